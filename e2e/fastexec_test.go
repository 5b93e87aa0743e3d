package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/testutil"
)

// runBin runs one of pyro's binaries with a private state dir and a PATH
// that holds no pyro.
func runBin(t *testing.T, bin, state string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PYRO_STATE_DIR="+state, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	return runCmd(t, cmd)
}

// The pyro binary runs a ready workspace's exec itself, exactly as the
// complete CLI does (output, exit codes, notes, history, secrets), and
// hands everything else to pyro-full. A pyro alone in a directory, without
// pyro-full beside it or on PATH, shows which calls it took: those succeed,
// the handed-off ones fail with host_tool_missing.
func TestCLIFastExec(t *testing.T) {
	s := stateDir(t)
	bins := testutil.Binaries(t)
	full := filepath.Join(bins, "pyro-full")
	lone := filepath.Join(t.TempDir(), "pyro")
	b, err := os.ReadFile(filepath.Join(bins, "pyro"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cr := runPyro(t, s, "workspace", "create", "debian:12", "--name", "fast", "--secret", "TOKEN=s3cr3t-value", "--id-only")
	if cr.code != 0 {
		t.Fatalf("create: %+v", cr)
	}
	id := strings.TrimSpace(cr.stdout)
	t.Cleanup(func() { runPyro(t, s, "workspace", "delete", id) })
	if r := runPyro(t, s, "workspace", "exec", id, "--", "mkdir -p sub"); r.code != 0 {
		t.Fatalf("mkdir: %+v", r)
	}

	handedOff := func(t *testing.T, r result) {
		t.Helper()
		if r.code != 125 || !strings.Contains(r.stderr, "host_tool_missing") || !strings.Contains(r.stderr, "pyro-full") {
			t.Fatalf("want the hand-off to a missing pyro-full, got %+v", r)
		}
	}
	cases := []struct {
		name string
		args []string
	}{
		{"output", []string{id, "--", "echo out; echo err >&2; exit 3"}},
		{"name", []string{"fast", "--", "echo by name"}},
		{"words", []string{id, "--", "printf", "%s|", "a b", "c'd", "$HOME"}},
		{"flags", []string{id, "--env", "A=1", "--workdir", "sub", "--", "echo $A; pwd"}},
		{"secret", []string{id, "--secret-env", "TOKEN=T", "--", "echo $T; echo s3cr3t-value"}},
		{"timeout", []string{id, "--timeout-seconds", "1", "--", "echo started; sleep 5"}},
		{"signal", []string{id, "--", "kill -9 $$"}},
		{"flag after dash", []string{id, "--", "echo", "--json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"workspace", "exec"}, c.args...)
			fast := runBin(t, lone, s, args...)
			slow := runBin(t, full, s, args...)
			if fast != slow {
				t.Fatalf("pyro and pyro-full differ:\npyro:      %+v\npyro-full: %+v", fast, slow)
			}
			if strings.Contains(fast.stderr, "host_tool_missing") {
				t.Fatalf("pyro handed a ready workspace's exec off: %+v", fast)
			}
		})
	}
	var got struct {
		Commands []struct {
			Sequence int    `json:"sequence"`
			Command  string `json:"command"`
			ExitCode int    `json:"exit_code"`
		} `json:"commands"`
	}
	lr := runPyro(t, s, "workspace", "logs", id, "--json")
	logs := got.Commands
	if err := json.Unmarshal([]byte(lr.stdout), &got); err != nil || len(got.Commands) != 1+2*len(cases) {
		t.Fatalf("logs (%d entries, want %d): %v %s", len(got.Commands), 1+2*len(cases), err, lr.stdout)
	}
	logs = got.Commands
	for i, e := range logs {
		if e.Sequence != i+1 {
			t.Errorf("entry %d has sequence %d", i, e.Sequence)
		}
		if strings.Contains(e.Command, "s3cr3t-value") {
			t.Errorf("the history shows a secret: %q", e.Command)
		}
	}
	if fast, slow := logs[9], logs[10]; fast.Command != slow.Command || !strings.Contains(fast.Command, "echo $T") || fast.ExitCode != 0 {
		t.Errorf("secret command recorded as %+v by pyro and %+v by pyro-full", fast, slow)
	}

	// The front answers --version as pyro-full does. What it does not take
	// goes to pyro-full: other commands and flags, and a workspace that
	// needs more than the command.
	handedOff(t, runBin(t, lone, s, "workspace", "exec", id, "--json", "--", "true"))
	handedOff(t, runBin(t, lone, s, "workspace", "exec", id, "-i", "--", "true"))
	handedOff(t, runBin(t, lone, s, "workspace", "exec", id, "--timeout-seconds", "0", "--", "true"))
	handedOff(t, runBin(t, lone, s, "workspace", "exec", "nosuch", "--", "true"))
	if fast, slow := runBin(t, lone, s, "--version"), runBin(t, full, s, "--version"); fast != slow || fast.code != 0 || !strings.HasPrefix(fast.stdout, "pyro version ") {
		t.Errorf("--version: pyro %+v, pyro-full %+v", fast, slow)
	}
	handedOff(t, runBin(t, lone, s, "--help"))
	// A pass over every workspace is owed after 2 s: with every workspace
	// quiet, the front records it itself; a dead write's temporary is for
	// the full CLI to look at.
	stamp := filepath.Join(s, "workspaces.tidied")
	if err := os.Remove(stamp); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, lone, s, "workspace", "exec", id, "--", "true"); r.code != 0 {
		t.Fatalf("exec with no stamp: %+v", r)
	}
	if _, err := os.Stat(stamp); err != nil {
		t.Fatalf("the quiet pass left no stamp: %v", err)
	}
	os.Remove(stamp)
	temp := filepath.Join(s, "workspaces", id, ".workspace.json-dead")
	if err := os.WriteFile(temp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	handedOff(t, runBin(t, lone, s, "workspace", "exec", id, "--", "true"))
	os.Remove(temp)
	if r := runPyro(t, s, "workspace", "stop", id); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	handedOff(t, runBin(t, lone, s, "workspace", "exec", id, "--", "true"))
	stopped, viaFull := runPyro(t, s, "workspace", "exec", id, "--", "true"), runBin(t, full, s, "workspace", "exec", id, "--", "true")
	if stopped.code != 125 || !strings.Contains(stopped.stderr, "workspace_stopped") || stopped != viaFull {
		t.Errorf("exec on a stopped workspace: pyro %+v, pyro-full %+v", stopped, viaFull)
	}
}
