package hostcfg

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testDirs(t *testing.T) Dirs {
	root := t.TempDir()
	return Dirs{Home: filepath.Join(root, "home"), ConfigHome: filepath.Join(root, "home", ".config"),
		CodexHome: filepath.Join(root, "home", ".codex"), Project: filepath.Join(root, "project")}
}

func fileOf(t *testing.T, host, scope string, d Dirs) File {
	t.Helper()
	fs, err := Files(host, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Scope == scope {
			return f
		}
	}
	t.Fatalf("%s has no %s scope", host, scope)
	return File{}
}

func serveArgs(args []string) error {
	if len(args) == 2 && (args[0] == "--profile" || args[0] == "--mode") && args[1] != "bogus" {
		return nil
	}
	return errors.New("bad profile")
}

// Repair writes a pyro entry doctor then finds ok, into a missing file and
// into one with other servers and settings, which it keeps in their order;
// doctor finds a moved binary, bad arguments and a short Codex timeout.
func TestRepairAndDoctor(t *testing.T) {
	d := testDirs(t)
	self, _ := os.Executable()
	s := Server{Command: self, Profile: "workspace-core"}
	o := CheckOptions{Self: self, ServeArgs: serveArgs}
	for _, host := range Hosts {
		f := fileOf(t, host, "user", d)
		if fd := Check(f, o); fd.State != "absent" {
			t.Fatalf("%s before repair: %+v", host, fd)
		}
		if backup, err := Repair(f, s); err != nil || backup != "" {
			t.Fatalf("%s repair of a missing file: %q %v", host, backup, err)
		}
		if fd := Check(f, o); fd.State != "ok" || fd.Command != self || len(fd.Notes) != 0 {
			t.Fatalf("%s after repair: %+v", host, fd)
		}
		if st, _ := os.Stat(f.Path); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: new config mode %v", host, st.Mode())
		}
	}

	// Claude Code's ~/.claude.json holds much more than servers.
	f := fileOf(t, "claude-code", "user", d)
	orig := `{"numStartups": 3, "projects": {"/x": {"allowedTools": []}}, "mcpServers": {"other": {"command": "/bin/other"}, "pyro": {"command": "/gone/pyro", "args": ["mcp", "serve", "--profile", "bogus"]}}, "zLast": true}`
	os.WriteFile(f.Path, []byte(orig), 0o640)
	os.Chmod(f.Path, 0o640)
	fd := Check(f, o)
	if fd.State != "broken" || len(fd.Problems) != 2 || !strings.Contains(fd.Problems[0], "/gone/pyro") || !strings.Contains(fd.Problems[1], "bad profile") {
		t.Fatalf("broken entry: %+v", fd)
	}
	backup, err := Repair(f, s)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(backup); string(b) != orig {
		t.Errorf("backup %q", b)
	}
	b, _ := os.ReadFile(f.Path)
	var keys []string
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	if strings.Join(keys, ",") != "numStartups,projects,mcpServers,zLast" || !strings.Contains(string(b), `"/bin/other"`) || !strings.Contains(string(b), `"allowedTools"`) {
		t.Errorf("repair did not keep the rest of the file in order (%v):\n%s", keys, b)
	}
	if st, _ := os.Stat(f.Path); st.Mode().Perm() != 0o640 {
		t.Errorf("repair changed the mode: %v", st.Mode())
	}
	if fd := Check(f, o); fd.State != "ok" {
		t.Errorf("after repair: %+v", fd)
	}

	// Codex: comments and other tables survive; a short timeout is a problem.
	f = fileOf(t, "codex", "user", d)
	codex := "# my settings\nmodel = \"o3\"\n\n[mcp_servers.pyro]\ncommand = \"" + self + "\"\nargs = [\"mcp\", \"serve\", \"--profile\", \"vm-run\"]\n\n[mcp_servers.pyro.env]\nX = \"1\"\n\n[mcp_servers.other]\ncommand = \"/bin/other\"\n"
	os.WriteFile(f.Path, []byte(codex), 0o600)
	if fd := Check(f, o); fd.State != "broken" || !strings.Contains(strings.Join(fd.Problems, ";"), "tool_timeout_sec") {
		t.Fatalf("codex without a timeout: %+v", fd)
	}
	if _, err := Repair(f, s); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(f.Path)
	if !strings.HasPrefix(string(b), "# my settings\nmodel = \"o3\"\n") || !strings.Contains(string(b), "[mcp_servers.other]\ncommand = \"/bin/other\"") ||
		strings.Contains(string(b), "X = \"1\"") || strings.Count(string(b), "[mcp_servers.pyro]") != 1 {
		t.Errorf("codex after repair:\n%s", b)
	}
	if fd := Check(f, o); fd.State != "ok" {
		t.Errorf("codex after repair: %+v", fd)
	}
	// An inline pyro entry cannot be edited as text: refused, file untouched.
	inline := "[mcp_servers]\npyro = { command = \"/x\" }\n"
	os.WriteFile(f.Path, []byte(inline), 0o600)
	if _, err := Repair(f, s); err == nil {
		t.Error("repair of an inline entry succeeded")
	}
	if b, _ := os.ReadFile(f.Path); string(b) != inline {
		t.Errorf("a refused repair changed the file: %q", b)
	}
	// Not JSON: broken, and repair refuses rather than overwrite.
	f = fileOf(t, "cursor", "project", d)
	os.MkdirAll(filepath.Dir(f.Path), 0o755)
	os.WriteFile(f.Path, []byte("{oops"), 0o644)
	if fd := Check(f, o); fd.State != "broken" {
		t.Errorf("invalid JSON: %+v", fd)
	}
	if _, err := Repair(f, s); err == nil || !strings.Contains(err.Error(), "print-config cursor") {
		t.Errorf("repair of invalid JSON: %v", err)
	}
}
