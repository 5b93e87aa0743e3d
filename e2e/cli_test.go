// Package e2e drives the built pyro binary like a user and an MCP host would.
package e2e_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/testutil"
)

// pyroCmd prepares the built CLI with a private state dir.
func pyroCmd(t *testing.T, state string, args ...string) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(testutil.Binaries(t), "pyro")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PYRO_STATE_DIR="+state)
	return cmd
}

type result struct {
	stdout, stderr string
	code           int
}

func runPyro(t *testing.T, state string, args ...string) result {
	t.Helper()
	return runCmd(t, pyroCmd(t, state, args...))
}

// runCmd runs cmd and returns its output and exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func stateDir(t *testing.T) string {
	t.Helper()
	testutil.RequiresVM(t)
	s := t.TempDir()
	t.Cleanup(func() { testutil.AssertNoLeaks(t, s) })
	return s
}

func TestCLIRunExitCodesAndJSON(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "run", "debian:12", "--", "uname", "-r")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "6.1.") {
		t.Fatalf("uname -r: %+v", r)
	}
	// Several words are quoted and joined; one word is a shell string as is.
	r = runPyro(t, s, "run", "debian:12", "--", "sh", "-c", "echo \"$0 $1\"; exit 7", "a b", "c")
	if r.code != 7 || r.stdout != "a b c\n" {
		t.Fatalf("sh -c with args: %+v", r)
	}
	r = runPyro(t, s, "run", "debian:12", "--json", "--", "echo $((6*7)) | tee /dev/stderr")
	if r.code != 0 {
		t.Fatalf("--json run: %+v", r)
	}
	var res struct {
		ExitCode      int    `json:"exit_code"`
		Stdout        string `json:"stdout"`
		Stderr        string `json:"stderr"`
		ExecutionMode string `json:"execution_mode"`
		BootMs        int64  `json:"boot_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, r.stdout)
	}
	if res.Stdout != "42\n" || res.Stderr != "42\n" || res.ExitCode != 0 || res.ExecutionMode == "" || res.BootMs <= 0 {
		t.Fatalf("json result %+v", res)
	}
}

func TestCLIRunErrors(t *testing.T) {
	s := stateDir(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "oci-layout:/nonexistent/nope", "--", "true"}, 125, "pyro env list"},
		{[]string{"run", "debian:12", "--vcpu-count", "99", "--", "true"}, 2, "--vcpu-count 99 is out of range"},
		{[]string{"run", "debian:12", "--mem-mib", "1", "--", "true"}, 2, "--mem-mib 1 is out of range"},
		{[]string{"run", "debian:12", "--timeout-seconds", "0", "--", "true"}, 2, "--timeout-seconds 0 is out of range"},
		{[]string{"workspace", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run", "debian:12", "--", ""}, 125, "command"},
		{[]string{"run", "debian:12"}, 2, "usage"},
		{[]string{"run", "debian:12", "--"}, 2, "no command"},
		{[]string{"run", "--bogus-flag", "debian:12", "--", "true"}, 2, "unknown flag"},
		{[]string{"workspace", "create", "debian:12", "--network-policy", "wide-open"}, 2, `--network-policy "wide-open" is not one of`},
		{[]string{"mcp", "serve", "--mode", "yolo"}, 2, `--mode "yolo" is not one of repro-fix`},
		{[]string{"mcp", "serve", "--mode", "inspect", "--profile", "vm-run"}, 2, "none of the others can be"},
	}
	for _, tc := range cases {
		r := runPyro(t, s, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("pyro %v: exit %d stderr %q; want exit %d mentioning %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
		if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines > 0 && tc.code == 125 {
			t.Errorf("pyro %v: want one clear line on stderr, got %q", tc.args, r.stderr)
		}
	}
	// --json errors are one JSON object on stdout too.
	r := runPyro(t, s, "run", "oci-layout:/nonexistent/nope", "--json", "--", "true")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "environment_missing" {
		t.Errorf("--json error: %v %q", err, r.stdout)
	}
}

func TestCLIRunTimeout(t *testing.T) {
	s := stateDir(t)
	start := time.Now()
	r := runPyro(t, s, "run", "debian:12", "--timeout-seconds", "2", "--", "sleep 600")
	if r.code != 124 || !strings.Contains(r.stderr, "timeout") {
		t.Fatalf("timeout: %+v", r)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("took %v", d)
	}
}

// waitForVM waits until a QEMU process of this state dir runs, plus settle
// time for the guest command to start.
func waitForVM(t *testing.T, state string, settle time.Duration) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for len(testutil.QEMUProcessesUnder(state)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no VM started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(settle)
}

// waitForFile polls for a file, failing after 60 s.
func waitForFile(t *testing.T, pattern string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[0]
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", pattern)
	return ""
}

func TestCLIInterruptTearsDown(t *testing.T) {
	s := stateDir(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := pyroCmd(t, s, "run", "debian:12", "--", "sleep 600")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitForVM(t, s, 3*time.Second)
		sent := time.Now()
		_ = cmd.Process.Signal(sig)
		err := cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 130 {
			t.Errorf("%v: err %v stderr %q; want exit 130", sig, err, errb.String())
		}
		if d := time.Since(sent); d > 10*time.Second {
			t.Errorf("%v: exit took %v", sig, d)
		}
		testutil.AssertNoLeaks(t, s)
	}
}

func TestCLIKilledOwnerIsReaped(t *testing.T) {
	s := stateDir(t)
	cmd := pyroCmd(t, s, "run", "debian:12", "--", "sleep 600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForVM(t, s, time.Second)
	_ = cmd.Process.Kill() // SIGKILL: no cleanup code runs in pyro
	_ = cmd.Wait()
	// The VMM dies with its owner (parent-death signal).
	if procs := testutil.WaitProcessesGone(s, 10*time.Second); len(procs) > 0 {
		t.Fatalf("VMM outlived its killed owner: %v", procs)
	}
	left, _ := os.ReadDir(filepath.Join(s, "vms"))
	if len(left) != 1 {
		t.Fatalf("want the dead run's state dir to remain until the next call, got %d entries", len(left))
	}
	// The next call reaps it.
	if r := runPyro(t, s, "run", "debian:12", "--", "true"); r.code != 0 {
		t.Fatalf("next run: %+v", r)
	}
}

const syscallTERM = syscall.SIGTERM
