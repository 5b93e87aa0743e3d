package pyro_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vm"
)

// mustExec runs command in the workspace and wants exit 0.
func mustExec(t *testing.T, c *pyro.Client, id, command string) *pyro.WorkspaceExecResult {
	t.Helper()
	r, err := c.ExecWorkspace(t.Context(), pyro.WorkspaceExecRequest{Workspace: id, Command: command, TimeoutSeconds: 60})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("%q: %v %+v", command, err, r)
	}
	return r
}

// killVMM kill -9s a workspace's QEMU and waits for its supervisor to notice
// and go.
func killVMM(t *testing.T, state, id string) {
	t.Helper()
	info := supervisorPids(t, state, id)
	syscall.Kill(info.VMMPid, syscall.SIGKILL)
	for deadline := time.Now().Add(30 * time.Second); vm.Alive(info.Pid, 0); {
		if time.Now().After(deadline) {
			t.Fatalf("supervisor %d still alive 30 s after its QEMU was killed", info.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	testutil.WaitProcessesGone(state, 10*time.Second)
}

// What a call answered as done is on disk: it survives kill -9 of the
// supervisor and of QEMU right after the answer (no sync by the command).
func TestWorkspaceDurableWrites(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	for _, kill := range []struct {
		name string
		fn   func(t *testing.T, state, id string)
	}{{"supervisor", killSupervisor}, {"qemu", killVMM}} {
		mustExec(t, c, w.WorkspaceID, "echo late > n-"+kill.name+".txt && rm -f gone")
		if _, err := c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.WorkspaceID, Path: "w-" + kill.name + ".txt", Content: []byte("written")}); err != nil {
			t.Fatal(err)
		}
		kill.fn(t, state, w.WorkspaceID)
		if s, err := c.WorkspaceStatus(ctx, w.WorkspaceID); err != nil || s.State != "stopped" {
			t.Fatalf("after kill -9 of %s: %v %+v", kill.name, err, s)
		}
		if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
			t.Fatal(err)
		}
		r := mustExec(t, c, w.WorkspaceID, "cat n-"+kill.name+".txt w-"+kill.name+".txt; test ! -e gone")
		if r.Stdout != "late\nwritten" {
			t.Fatalf("after kill -9 of %s and start: %q", kill.name, r.Stdout)
		}
		mustExec(t, c, w.WorkspaceID, "touch gone")
	}
}

// A guest root process cannot reach the agent's channel: the exact
// attack (pidfd_getfd of PID 1's fd 3, then a fake header announcing a
// 256 MiB body) no longer stalls the host, and the kernel refuses the steal.
func TestWorkspaceAgentChannelUnreachable(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	attack := `perl -e '$p=syscall(434,1,0);$fd=syscall(438,$p,3,0);open($fh,">&=",$fd);syswrite($fh,pack("CCnNN",0,0,0,0x7ffffff1,0x10000000));sleep 1'`
	if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: attack, TimeoutSeconds: 20}); err != nil {
		t.Fatalf("attack exec: %v", err)
	}
	r := mustExec(t, c, w.WorkspaceID, `perl -e '$p=syscall(434,1,0); $fd=syscall(438,$p,3,0); print $fd < 0 ? "refused: ".($!+0) : "stole $fd"'; echo; grep CapBnd /proc/self/status`)
	if !strings.HasPrefix(r.Stdout, "refused: 1\n") { // EPERM
		t.Fatalf("pidfd_getfd of the agent's fd: %q", r.Stdout)
	}
	capBnd, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(strings.SplitN(r.Stdout, "\n", 2)[1], "CapBnd:")), 16, 64)
	if err != nil || capBnd&(1<<19) != 0 || capBnd&(1<<21) == 0 { // CAP_SYS_PTRACE gone, CAP_SYS_ADMIN kept
		t.Fatalf("commands' bounding set: %q (%v)", r.Stdout, err)
	}
	if s, err := c.WorkspaceStatus(ctx, w.WorkspaceID); err != nil || s.State != "running" {
		t.Fatalf("status: %v %+v", err, s)
	}
	// Root commands still trace their own children.
	mustExec(t, c, w.WorkspaceID, `sleep 5 & perl -e '$p=syscall(434,$ARGV[0],0); syscall(438,$p,0,0) >= 0 or die "getfd: $!"' $!; kill $!`)
}

// Signals a guest process can send PID 1 do not end the agent.
func TestWorkspaceAgentSurvivesSignals(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	w := createWorkspace(t, c, "debian:12")
	// Numbers, not names: /bin/sh is dash. SEGV BUS FPE ILL TRAP ABRT SYS QUIT
	// TERM INT HUP USR1 USR2 PIPE ALRM STKFLT XCPU PWR and three real-time ones.
	mustExec(t, c, w.WorkspaceID, "for s in 11 7 8 4 5 6 31 3 15 2 1 10 12 13 14 16 24 30 35 40 64; do kill -$s 1 || exit 1; done; sleep 1")
	if r := mustExec(t, c, w.WorkspaceID, "echo alive"); r.Stdout != "alive\n" {
		t.Fatalf("after the signals: %q", r.Stdout)
	}
}

// A memory hog and a fork bomb stay inside the commands' cgroup limits: the
// agent keeps answering and later commands keep their timeouts.
func TestWorkspaceForkBombBounded(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	// The hog first: killed inside its cgroup (by the OOM killer, not by its
	// timeout, which is generous because TCG allocates slowly), not the agent.
	hog, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID,
		Command: `perl -e 'push @a, "x" x (1<<20) while 1'`, TimeoutSeconds: 300})
	if err != nil || hog.ExitCode != 137 || hog.TimedOut {
		t.Fatalf("memory hog: %v %+v", err, hog)
	}
	if r := mustExec(t, c, w.WorkspaceID, "cat /sys/fs/cgroup/pyro-commands/memory.events"); !strings.Contains(r.Stdout, "oom_kill 1") {
		t.Fatalf("commands' memory events: %q", r.Stdout)
	}
	if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "bomb() { bomb | bomb & }; bomb", TimeoutSeconds: 10}); err != nil {
		t.Fatalf("bomb: %v", err)
	}
	time.Sleep(5 * time.Second) // let it grow to its limit
	for range 3 {
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "true", TimeoutSeconds: 5})
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("true during the bomb: %v %+v", err, r)
		}
	}
	r := mustExec(t, c, w.WorkspaceID, "cat /sys/fs/cgroup/pyro-commands/pids.current")
	if n, err := strconv.Atoi(strings.TrimSpace(r.Stdout)); err != nil || n > 2048 {
		t.Fatalf("commands' pids: %q", r.Stdout)
	}
	_, _ = c.StopWorkspace(context.WithoutCancel(ctx), w.WorkspaceID)
}

// A guest that stops answering (its QEMU frozen with SIGSTOP) costs a call
// its timeout plus the host's grace, not minutes: the host gives the agent
// session up with agent_unavailable, the workspace reads stopped, and start
// brings it back with every answered write.
func TestWorkspaceFrozenGuestBounded(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	mustExec(t, c, w.WorkspaceID, "echo kept > note")
	info := supervisorPids(t, state, w.WorkspaceID)
	syscall.Kill(info.VMMPid, syscall.SIGSTOP)
	defer syscall.Kill(info.VMMPid, syscall.SIGCONT)
	_, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "true", TimeoutSeconds: 1})
	if code := pyro.ErrorCode(err); code != "agent_unavailable" {
		t.Fatalf("exec on a frozen guest: %v (code %q)", err, code)
	}
	for deadline := time.Now().Add(30 * time.Second); vm.Alive(info.Pid, 0); {
		if time.Now().After(deadline) {
			t.Fatalf("supervisor %d still alive 30 s after giving its agent up", info.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	testutil.WaitProcessesGone(state, 10*time.Second)
	if s, err := c.WorkspaceStatus(ctx, w.WorkspaceID); err != nil || s.State != "stopped" {
		t.Fatalf("status: %v %+v", err, s)
	}
	if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "true"}); pyro.ErrorCode(err) != "workspace_stopped" {
		t.Fatalf("exec on the stopped workspace: %v", err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if r := mustExec(t, c, w.WorkspaceID, "cat note"); r.Stdout != "kept\n" {
		t.Fatalf("after start: %q", r.Stdout)
	}
}

// supervisorPids reads the pids of a running workspace's supervisor and QEMU.
func supervisorPids(t *testing.T, state, id string) (info struct {
	Pid    int
	VMMPid int `json:"vmm_pid"`
}) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "workspaces", id, "supervisor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &info); err != nil || info.VMMPid == 0 {
		t.Fatalf("supervisor.json %s: %v", b, err)
	}
	return info
}

// A workspace directory removed under a running workspace (by hand, or by a
// delete whose kill missed) takes its supervisor and QEMU with it: nothing
// could reach or clean up that VM any more.
func TestWorkspaceDirRemoved(t *testing.T) {
	c, state := newWorkspaceClient(t)
	w := createWorkspace(t, c, "debian:12")
	info := supervisorPids(t, state, w.WorkspaceID)
	if err := os.RemoveAll(filepath.Join(state, "workspaces", w.WorkspaceID)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); vm.Alive(info.Pid, 0) || vm.Alive(info.VMMPid, 0); {
		if time.Now().After(deadline) {
			t.Fatalf("supervisor %d or QEMU %d still alive 30 s after the workspace dir went", info.Pid, info.VMMPid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	testutil.WaitProcessesGone(state, 10*time.Second)
}

// A workspace still run by a supervisor of an older pyro (after an
// upgrade) is refused with a typed error that says what to do, and a stop
// and start bring it to this version with its files.
func TestWorkspaceSupervisorOutdated(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	mustExec(t, c, w.WorkspaceID, "echo kept > note")
	path := filepath.Join(state, "workspaces", w.WorkspaceID, "supervisor.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]json.RawMessage // raw: pid_start does not fit a float64
	if err := json.Unmarshal(b, &info); err != nil || info["api"] == nil {
		t.Fatalf("supervisor.json has no api: %s %v", b, err)
	}
	delete(info, "api") // as a supervisor from before the field wrote it
	if b, err = json.Marshal(info); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "true"})
	if pyro.ErrorCode(err) != pyro.CodeSupervisorOutdated || !strings.Contains(err.Error(), "pyro workspace stop "+w.WorkspaceID) {
		t.Fatalf("exec under an older supervisor: %v", err)
	}
	if _, err := c.StopWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, c, w.WorkspaceID, "cat note").Stdout; got != "kept\n" {
		t.Fatalf("after stop and start: %q", got)
	}
}
