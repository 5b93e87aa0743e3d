package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// host doctor finds a broken Codex entry, host repair fixes it in place
// (keeping the user's other settings), and the repaired entry really
// starts pyro's MCP server with the mode asked for, as Codex would.
func TestCLIHostRepair(t *testing.T) {
	s := stateDir(t)
	home := t.TempDir()
	project := t.TempDir()
	run := func(args ...string) result {
		t.Helper()
		cmd := pyroCmd(t, s, args...)
		cmd.Dir = project
		cmd.Env = append(cmd.Env, "HOME="+home, "XDG_CONFIG_HOME=", "CODEX_HOME=")
		return runCmd(t, cmd)
	}
	if r := run("host", "doctor"); r.code != 0 || strings.Contains(r.stdout, " ok ") || !strings.Contains(r.stdout, "absent") {
		t.Fatalf("host doctor on an empty home: %+v", r)
	}
	cfg := filepath.Join(home, ".codex", "config.toml")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	os.WriteFile(cfg, []byte("model = \"o3\"\n\n[mcp_servers.pyro]\ncommand = \"/opt/old/pyro\"\nargs = [\"mcp\", \"serve\"]\n"), 0o600)
	r := run("host", "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "/opt/old/pyro is not an executable file") || !strings.Contains(r.stdout, "pyro host repair codex --scope user") {
		t.Fatalf("host doctor with a moved binary: %+v", r)
	}
	if r := run("host", "repair", "codex", "--mode", "review-eval"); r.code != 0 || !strings.Contains(r.stdout, cfg+".pyro-bak") {
		t.Fatalf("host repair: %+v", r)
	}
	r = run("host", "doctor", "--json")
	var doc struct {
		OK    bool `json:"ok"`
		Files []struct{ Host, State string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 || !doc.OK {
		t.Fatalf("host doctor after repair: %v %+v", err, r)
	}
	var v struct {
		Model      string
		MCPServers map[string]struct {
			Command string
			Args    []string
		} `toml:"mcp_servers"`
	}
	if _, err := toml.DecodeFile(cfg, &v); err != nil || v.Model != "o3" {
		t.Fatalf("repaired config: %v %+v", err, v)
	}
	entry := v.MCPServers["pyro"]
	cmd := exec.Command(entry.Command, entry.Args...)
	cmd.Env = append(os.Environ(), "PYRO_STATE_DIR="+s)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "codex-like", Version: "1"}, nil).Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if !slices.Contains(names, "workspace_patch_apply") || slices.Contains(names, "shell_open") || !strings.Contains(cs.InitializeResult().Instructions, "judge a proposed change") {
		t.Errorf("the repaired entry serves %v", names)
	}
}

// The demo runs every step for real and leaves no workspace behind.
func TestCLIDemo(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "demo", "--json")
	var out struct {
		OK    bool `json:"ok"`
		Steps []struct {
			Step   string `json:"step"`
			OK     bool   `json:"ok"`
			Output string `json:"output"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || !out.OK || len(out.Steps) != 7 {
		t.Fatalf("demo: %v %+v", err, r)
	}
	if !strings.Contains(out.Steps[2].Output, "FAIL add 2 3 = -1") || !strings.Contains(out.Steps[4].Output, "PASS add 2 3 = 5") ||
		!strings.Contains(out.Steps[5].Output, "+echo $(( $1 + $2 ))") {
		t.Errorf("demo steps: %+v", out.Steps)
	}
	if l := runPyro(t, s, "workspace", "list", "--json"); !strings.Contains(l.stdout, "[]") {
		t.Errorf("the demo left a workspace: %s", l.stdout)
	}
}
