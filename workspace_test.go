package pyro_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vm"
)

func newWorkspaceClient(t testing.TB) (*pyro.Client, string) {
	t.Helper()
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	state := t.TempDir()
	c, err := pyro.New(pyro.WithStateDir(state), pyro.WithAgentPath(bin+"/pyro-agent"), pyro.WithPyroBinary(bin+"/pyro"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	return c, state
}

// createWorkspace creates a workspace of env, deleted when the test ends
// (before the leak check of newWorkspaceClient).
func createWorkspace(t *testing.T, c *pyro.Client, env string) *pyro.Workspace {
	t.Helper()
	return createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: env})
}

// createWorkspaceWith is createWorkspace with a whole request.
func createWorkspaceWith(t *testing.T, c *pyro.Client, req pyro.CreateWorkspaceRequest) *pyro.Workspace {
	t.Helper()
	w, err := c.CreateWorkspace(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), w.WorkspaceID) })
	return w
}

// killSupervisor kill -9s a workspace's supervisor and waits for its VMM to go.
func killSupervisor(t *testing.T, state, id string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "workspaces", id, "supervisor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal(b, &info); err != nil || info.Pid == 0 {
		t.Fatalf("supervisor.json %s: %v", b, err)
	}
	syscall.Kill(info.Pid, syscall.SIGKILL)
	// kill(2) only queues the signal: wait for the supervisor itself to be
	// dead, not only for its QEMU, before asking what pyro sees.
	for deadline := time.Now().Add(10 * time.Second); vm.Alive(info.Pid, 0); {
		if time.Now().After(deadline) {
			t.Fatalf("supervisor %d still alive 10 s after kill -9", info.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	testutil.WaitProcessesGone(state, 10*time.Second)
}

func seedRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "src"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "src", "calc.sh"), []byte("add() { echo $(($1 - $2)); }\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "test.sh"), []byte(". ./src/calc.sh\n[ \"$(add 2 3)\" = 5 ] && echo PASS || { echo FAIL; exit 1; }\n"), 0o755))
	return dir
}

// The agent loop of the workspaces issue, through the SDK: create with a
// seed, a failing test, a fix, a passing test, stop, start, still fixed,
// delete leaves nothing.
func TestWorkspaceAgentLoop(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seedRepo(t), Name: "loop", Labels: map[string]string{"task": "t1"}})
	if err != nil {
		t.Fatal(err)
	}
	if w.State != "running" || w.SeedEntries < 3 || w.Name != "loop" || w.Backend != "qemu" {
		t.Fatalf("created %+v", w)
	}
	exec := func(cmd string) *pyro.WorkspaceExecResult {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: "loop", Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := exec("./test.sh"); r.ExitCode != 1 || r.Stdout != "FAIL\n" {
		t.Fatalf("first test run: %+v", r)
	}
	if r := exec("sed -i 's/\\$1 - \\$2/$1 + $2/' src/calc.sh && pwd"); r.ExitCode != 0 || r.Stdout != "/workspace\n" {
		t.Fatalf("fix: %+v", r)
	}
	if r := exec("./test.sh"); r.ExitCode != 0 || r.Stdout != "PASS\n" || r.Sequence != 3 {
		t.Fatalf("second test run: %+v", r)
	}
	// Concurrent commands: each gets its own sequence (in the order they
	// started), the log lists them by sequence though they ended in another
	// order, and the count covers them all.
	var wg sync.WaitGroup
	seqs := make([]int, 6)
	for i := range seqs {
		wg.Go(func() {
			r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: "loop", Command: fmt.Sprintf("sleep 0.%d", 6-i)})
			if err != nil {
				t.Error(err)
				return
			}
			seqs[i] = r.Sequence
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	if !slices.Equal(seqs, []int{4, 5, 6, 7, 8, 9}) {
		t.Errorf("concurrent sequences %v, want 4..9 once each", seqs)
	}
	logs, err := c.WorkspaceLogs(ctx, "loop")
	if err != nil || len(logs) != 9 {
		t.Fatalf("logs: %d entries, %v", len(logs), err)
	}
	for i, e := range logs {
		if e.Sequence != i+1 {
			t.Errorf("log entry %d has sequence %d", i, e.Sequence)
		}
	}
	if s, err := c.WorkspaceStatus(ctx, "loop"); err != nil || s.CommandCount != 9 {
		t.Errorf("command count after the concurrent commands: %+v, %v", s, err)
	}
	if _, err := c.StopWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.WorkspaceStatus(ctx, w.WorkspaceID); s.State != "stopped" || len(testutil.QEMUProcessesUnder(state)) != 0 {
		t.Fatalf("after stop: %+v", s)
	}
	if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "true"}); pyro.ErrorCode(err) != "workspace_stopped" {
		t.Fatalf("exec on a stopped workspace: %v", err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if r := exec("./test.sh && cat src/calc.sh"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "$1 + $2") {
		t.Fatalf("after restart: %+v", r)
	}
	logs, err = c.WorkspaceLogs(ctx, w.WorkspaceID)
	if err != nil || len(logs) != 10 || logs[0].ExitCode != 1 || logs[2].ExitCode != 0 || logs[9].Sequence != 10 {
		t.Fatalf("logs %v %+v", err, logs)
	}
	// Variables and a directory of one command.
	r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: "loop", Command: `echo "$GREETING $CI"; pwd`,
		Env: map[string]string{"GREETING": "hi there", "CI": "1"}, Cwd: "src"})
	if err != nil || r.Stdout != "hi there 1\n/workspace/src\n" {
		t.Fatalf("env and cwd: %v %+v", err, r)
	}
	for _, bad := range []pyro.WorkspaceExecRequest{
		{Workspace: "loop", Command: "true", Cwd: "../etc"},
		{Workspace: "loop", Command: "true", Env: map[string]string{"1BAD": "x"}},
		{Workspace: "loop", Command: "true", Env: map[string]string{"X": "a\x00b"}},
	} {
		if _, err := c.ExecWorkspace(ctx, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := c.DeleteWorkspace(ctx, "loop"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WorkspaceStatus(ctx, w.WorkspaceID); pyro.ErrorCode(err) != "workspace_not_found" {
		t.Fatalf("status after delete: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(state, "workspaces")); len(left) != 0 {
		t.Fatalf("host state left: %v", left)
	}
}

// kill -9 of the supervisor: the workspace shows as stopped (not lost) and
// start brings it back with /workspace intact.
func TestWorkspaceSurvivesSupervisorCrash(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	if r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "echo kept > note && sync"}); err != nil || r.ExitCode != 0 {
		t.Fatalf("%v %+v", err, r)
	}
	killSupervisor(t, state, w.WorkspaceID)
	if s, err := c.WorkspaceStatus(ctx, w.WorkspaceID); err != nil || s.State != "stopped" {
		t.Fatalf("after kill -9: %v %+v", err, s)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "cat note"})
	if err != nil || r.Stdout != "kept\n" {
		t.Fatalf("after restart: %v %+v", err, r)
	}
}

func TestWorkspaceBadInput(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	cases := []struct {
		req  pyro.CreateWorkspaceRequest
		code string
	}{
		{pyro.CreateWorkspaceRequest{Environment: "oci-layout:/nonexistent/nope"}, "environment_missing"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: "/does/not/exist"}, "invalid_argument"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", Name: "bad name!"}, "invalid_argument"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", VCPUCount: 64}, "invalid_argument"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", Labels: map[string]string{"": "x"}}, "invalid_argument"},
	}
	for _, tc := range cases {
		if _, err := c.CreateWorkspace(ctx, tc.req); pyro.ErrorCode(err) != tc.code {
			t.Errorf("%+v: %v, want %s", tc.req, err, tc.code)
		}
	}
	// A hostile seed archive is refused before anything boots, and leaves nothing.
	evil := filepath.Join(t.TempDir(), "evil.tar")
	f, _ := os.Create(evil)
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	f.Close()
	if _, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: evil}); pyro.ErrorCode(err) != "path_outside_workspace" {
		t.Errorf("seed with ../: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(state, "workspaces")); len(left) != 0 {
		t.Errorf("failed create left state: %v", left)
	}
	for _, ref := range []string{"0123456789ab", "no-such-name", "../etc"} {
		if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ref, Command: "true"}); pyro.ErrorCode(err) != "workspace_not_found" {
			t.Errorf("exec %q: %v", ref, err)
		}
	}
}
