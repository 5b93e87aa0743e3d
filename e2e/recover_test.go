package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/testutil"
)

// A `workspace create` killed with -9 while its VM boots leaves a
// supervisor and a half-made workspace; the next pyro call undoes it.
func TestCLIWorkspaceCreateKilled(t *testing.T) {
	s := stateDir(t)
	cmd := pyroCmd(t, s, "workspace", "create", "debian:12", "--seed-path", seedDir(t))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForVM(t, s, 0)     // its supervisor runs
	_ = cmd.Process.Kill() // no cleanup code runs in pyro
	_ = cmd.Wait()
	r := runPyro(t, s, "workspace", "list", "--json")
	if r.code != 0 || strings.Contains(r.stdout, "workspace_id") {
		t.Fatalf("list after a killed create: %+v", r)
	}
	if procs := testutil.WaitProcessesGone(s, 15*time.Second); len(procs) > 0 {
		t.Fatalf("processes left: %v", procs)
	}
	if left, _ := os.ReadDir(filepath.Join(s, "workspaces")); len(left) != 0 {
		t.Errorf("a killed create left %v", left)
	}
}

// A `workspace reset` killed with -9 after it set the old disk aside is
// rolled back by the next pyro call: the new VM is stopped and the files
// and history from before the reset are back.
func TestCLIWorkspaceResetKilled(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	if r := runPyro(t, s, "workspace", "exec", id, "--", "echo before-reset > kept.txt"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	cmd := pyroCmd(t, s, "workspace", "reset", id)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, wsPaths(filepath.Join(s, "workspaces", id)).PreResetDisk())
	// The old VM was stopped before that: wait for the new one, so that
	// there is one to stop.
	waitForVM(t, s, 0)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	r := runPyro(t, s, "workspace", "status", id, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"state": "stopped"`) {
		t.Fatalf("status after a killed reset: %+v", r)
	}
	if procs := testutil.WaitProcessesGone(s, 15*time.Second); len(procs) > 0 {
		t.Fatalf("processes left: %v", procs)
	}
	if _, err := os.Stat(wsPaths(filepath.Join(s, "workspaces", id)).PreResetDisk()); err == nil {
		t.Error("the set-aside disk is still there after the rollback")
	}
	if r := runPyro(t, s, "workspace", "start", id); r.code != 0 {
		t.Fatalf("start: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", "cat kept.txt"); r.stdout != "before-reset\n" {
		t.Errorf("files after the rollback: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "logs", id); !strings.Contains(r.stdout, "echo before-reset") {
		t.Errorf("history after the rollback: %+v", r)
	}
}
