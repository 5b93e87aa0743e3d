package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vmm/backends"
	"github.com/pyrovm/pyro/internal/workspace"
)

// wsState is a workspace's state as `workspace status --json` reports it.
func wsState(t *testing.T, s, id string) string {
	t.Helper()
	r := runPyro(t, s, "workspace", "status", id, "--json")
	var w struct{ State string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &w) != nil {
		t.Fatalf("status: %+v", r)
	}
	return w.State
}

// bgJob starts `sleep 1000` in the background and returns a command that
// prints the note file and whether that very process still runs.
func bgJob(t *testing.T, s, id string) string {
	t.Helper()
	r := runPyro(t, s, "workspace", "exec", id, "--", "echo kept > note; sleep 1000 >/dev/null 2>&1 & echo $!")
	if r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	return "cat note; grep -q '^sleep' /proc/" + strings.TrimSpace(r.stdout) + "/cmdline 2>/dev/null && echo alive || echo gone"
}

// A `workspace pause` killed with -9 while the machine is being saved:
// the supervisor finishes the save, and the workspace is paused, its
// processes alive after the resume.
func TestCLIPauseKilled(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	check := bgJob(t, s, id)
	cmd := pyroCmd(t, s, "workspace", "pause", id)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, filepath.Join(s, "workspaces", id, "paused", "state.tmp"))
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if procs := testutil.WaitProcessesGone(filepath.Join(s, "workspaces", id), 60*time.Second); len(procs) > 0 {
		t.Fatalf("the supervisor did not end after its pause: %v", procs)
	}
	if st := wsState(t, s, id); st != "paused" {
		t.Fatalf("state after a killed pause: %s", st)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", check); r.code != 0 || r.stdout != "kept\nalive\n" {
		t.Fatalf("exec after a killed pause: %+v", r)
	}
}

// A supervisor killed with -9 in the middle of a pause: the pause fails
// with a clear error and the workspace is stopped with its disk intact.
func TestCLIPauseSupervisorKilled(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	check := bgJob(t, s, id)
	supPid := supervisorPid(t, s, id)
	cmd := pyroCmd(t, s, "workspace", "pause", id)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, filepath.Join(s, "workspaces", id, "paused", "state.tmp"))
	_ = syscall.Kill(supPid, syscall.SIGKILL)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 || !strings.Contains(stderr.String(), "pause_failed") || !strings.Contains(stderr.String(), "stopped") {
		t.Fatalf("pause with a killed supervisor: %v %s", err, stderr.String())
	}
	if st := wsState(t, s, id); st != "stopped" {
		t.Fatalf("state after the failed pause: %s", st)
	}
	if _, err := os.Stat(filepath.Join(s, "workspaces", id, "paused")); !os.IsNotExist(err) {
		t.Fatalf("the unfinished pause left its dir: %v", err)
	}
	if r := runPyro(t, s, "workspace", "start", id); r.code != 0 {
		t.Fatalf("start: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", check); r.code != 0 || r.stdout != "kept\ngone\n" {
		t.Fatalf("after start: %+v", r)
	}
}

// Idle auto-pause: no call for N seconds pauses the workspace; the next
// exec resumes it. update changes the idle time of a running workspace.
func TestCLIIdlePause(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "workspace", "create", "debian:12", "--idle-pause-seconds", "600", "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { runPyro(t, s, "workspace", "delete", id) })
	check := bgJob(t, s, id)
	if r := runPyro(t, s, "workspace", "update", id, "--idle-pause-seconds", "2", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"idle_pause_seconds": 2`) {
		t.Fatalf("update: %+v", r)
	}
	deadline := time.Now().Add(90 * time.Second)
	for wsState(t, s, id) != "paused" {
		if time.Now().After(deadline) {
			t.Fatal("not paused 90 s after its idle time of 2 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if procs := testutil.WaitProcessesGone(filepath.Join(s, "workspaces", id), 30*time.Second); len(procs) > 0 {
		t.Fatalf("processes of an idle-paused workspace: %v", procs)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", check); r.code != 0 || r.stdout != "kept\nalive\n" {
		t.Fatalf("exec after the idle pause: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "update", id, "--idle-pause-seconds", "-1"); r.code != 2 {
		t.Fatalf("a negative idle time: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "update", id, "--ttl-action", "sleep", "--json"); r.code != 125 || !strings.Contains(r.stdout, "invalid_argument") {
		t.Fatalf("a bad TTL action: %+v", r)
	}
}

// A `workspace fork` killed with -9 midway leaves no fork behind (the next
// call removes what it made) and the source with its files and processes.
func TestCLIForkKilled(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	check := bgJob(t, s, id)
	cmd := pyroCmd(t, s, "workspace", "fork", id, "--count", "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, layerPattern(s))
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	r := runPyro(t, s, "workspace", "list", "--json")
	var l struct {
		Workspaces []struct {
			WorkspaceID string `json:"workspace_id"`
			State       string
		}
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil || len(l.Workspaces) != 1 || l.Workspaces[0].WorkspaceID != id {
		t.Fatalf("list after a killed fork: %+v", r)
	}
	want := "kept\nalive\n"
	switch st := l.Workspaces[0].State; st {
	case "paused", "running":
	case "stopped":
		// A paused source killed in the instant between the disk's swap
		// for its overlay and the saved state's new disk identity: stopped
		// with its disk. (A running source is never stopped by a fork: its
		// supervisor finishes the save and goes on.)
		want = "kept\ngone\n"
		if r := runPyro(t, s, "workspace", "start", id); r.code != 0 {
			t.Fatalf("start: %+v", r)
		}
	default:
		t.Fatalf("the source after a killed fork: %s", st)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", check); r.code != 0 || r.stdout != want {
		t.Fatalf("the source after a killed fork: %+v", r)
	}
	runPyro(t, s, "workspace", "delete", id)
	if left, _ := filepath.Glob(layerPattern(s)); len(left) != 0 {
		t.Fatalf("layers left: %v", left)
	}
	if procs := testutil.WaitProcessesGone(s, 15*time.Second); len(procs) > 0 {
		t.Fatalf("processes left: %v", procs)
	}
}

// The source's supervisor killed with -9 while a fork saves its machine:
// the fork fails clearly, makes no workspace, and the source is stopped
// with its disk.
func TestCLIForkSupervisorKilled(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	check := bgJob(t, s, id)
	supPid := supervisorPid(t, s, id)
	cmd := pyroCmd(t, s, "workspace", "fork", id, "--count", "2")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The running source saves its machine straight into the first fork.
	waitForFile(t, filepath.Join(s, "workspaces", "*", "paused", "state"))
	_ = syscall.Kill(supPid, syscall.SIGKILL)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 || !strings.Contains(stderr.String(), "fork_failed") ||
		!strings.Contains(stderr.String(), "stopped with its disk") {
		t.Fatalf("fork with a killed supervisor: %v %s", err, stderr.String())
	}
	r := runPyro(t, s, "workspace", "list", "--json")
	if r.code != 0 || strings.Count(r.stdout, `"workspace_id"`) != 1 || !strings.Contains(r.stdout, `"state": "stopped"`) {
		t.Fatalf("list after the failed fork: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "start", id); r.code != 0 {
		t.Fatalf("start: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", check); r.code != 0 || r.stdout != "kept\ngone\n" {
		t.Fatalf("after start: %+v", r)
	}
}

// wsPaths names a workspace's files as the default VMM backend lays them out.
func wsPaths(dir string) workspace.Paths {
	return workspace.Paths{Dir: dir, DiskFile: backends.Default().DiskFile()}
}

// layerPattern matches the disk layers forks share, under a state dir.
func layerPattern(state string) string {
	return filepath.Join(state, "workspaces", "layers", "*"+filepath.Ext(backends.Default().DiskFile()))
}

// supervisorPid reads the pid of a running workspace's supervisor.
func supervisorPid(t *testing.T, state, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "workspaces", id, "supervisor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal(b, &info); err != nil || info.Pid == 0 {
		t.Fatalf("supervisor.json: %s %v", b, err)
	}
	return info.Pid
}
