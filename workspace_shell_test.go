package pyro_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
)

// shellSession drives one shell: write a line, read until idle.
type shellSession struct {
	t      *testing.T
	c      *pyro.Client
	ws, id string
	cursor int64
}

func (s *shellSession) write(input string) {
	s.t.Helper()
	if _, err := s.c.WriteShell(s.t.Context(), pyro.WriteShellRequest{Workspace: s.ws, ShellID: s.id, Input: input}); err != nil {
		s.t.Fatalf("write %q: %v", input, err)
	}
}

// readUntil reads (plain) from the last cursor until want shows up.
func (s *shellSession) readUntil(want string) *pyro.ShellOutput {
	s.t.Helper()
	var seen strings.Builder
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		o, err := s.c.ReadShell(s.t.Context(), pyro.ReadShellRequest{Workspace: s.ws, ShellID: s.id, Cursor: s.cursor, Plain: true, WaitForIdleMs: 300})
		if err != nil {
			s.t.Fatalf("read: %v", err)
		}
		s.cursor = o.NextCursor
		seen.WriteString(o.Output + "\n")
		if strings.Contains(seen.String(), want) {
			o.Output = seen.String()
			return o
		}
		if o.State != pyro.ShellRunning {
			break
		}
	}
	s.t.Fatalf("never saw %q in:\n%s", want, seen.String())
	return nil
}

// The shell loop of the issue through the SDK: python3 in a PTY, computed
// and read back plain; a program that exits; bad cursors and closed shells.
func TestShellPythonAndErrors(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12-build")
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID})
	if err != nil {
		t.Fatal(err)
	}
	if sh.State != pyro.ShellRunning || sh.Cols != 120 || sh.Rows != 30 || sh.Cwd != "/workspace" || len(sh.ShellID) < 8 {
		t.Fatalf("opened %+v", sh)
	}
	s := &shellSession{t: t, c: c, ws: w.WorkspaceID, id: sh.ShellID}
	s.write("stty size; pwd")
	s.readUntil("30 120")
	if r, err := c.ResizeShell(ctx, pyro.ResizeShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Cols: 100, Rows: 40}); err != nil || r.Cols != 100 || r.Rows != 40 {
		t.Fatalf("resize: %v %+v", err, r)
	}
	s.write("stty size")
	s.readUntil("40 100")
	if _, err := c.ResizeShell(ctx, pyro.ResizeShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Cols: 5000, Rows: 40}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("resize to 5000 cols: %v", err)
	}
	s.write("python3 -q")
	s.readUntil(">>>")
	s.write("x = 6 * 7")
	s.write("print(x * 1000 + 1)")
	out := s.readUntil("42001")
	if strings.Contains(out.Output, "\x1b") {
		t.Errorf("plain output has escape sequences: %q", out.Output)
	}

	// A second reader from 0 sees everything the first one saw.
	all, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID})
	if err != nil || !strings.Contains(all.Output, "42001") || all.Cursor != 0 || all.DroppedBytes != 0 {
		t.Fatalf("read from 0: %v %+v", err, all)
	}
	// A cursor from the future is refused, and says what to do.
	if _, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Cursor: all.NextCursor + 1000}); pyro.ErrorCode(err) != "invalid_cursor" {
		t.Errorf("future cursor: %v", err)
	}
	// Ctrl-C reaches the foreground program (python shows KeyboardInterrupt).
	s.write("import time; time.sleep(100)")
	time.Sleep(500 * time.Millisecond)
	if _, err := c.SignalShell(ctx, pyro.SignalShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Signal: "INT"}); err != nil {
		t.Fatal(err)
	}
	s.readUntil("KeyboardInterrupt")

	// The program exits: state exited with its code; input is refused.
	s.write("exit()")
	s.readUntil("#")
	s.write("exit 3")
	deadline := time.Now().Add(30 * time.Second)
	var info *pyro.ShellOutput
	for time.Now().Before(deadline) {
		info, err = c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Cursor: s.cursor, WaitForIdleMs: 200})
		if err != nil {
			t.Fatal(err)
		}
		s.cursor = info.NextCursor
		if info.State != pyro.ShellRunning {
			break
		}
	}
	if info.State != pyro.ShellExited || info.ExitCode == nil || *info.ExitCode != 3 {
		t.Fatalf("after exit 3: %+v", info)
	}
	if _, err := c.WriteShell(ctx, pyro.WriteShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Input: "echo hi"}); pyro.ErrorCode(err) != "shell_closed" {
		t.Errorf("write to exited shell: %v", err)
	}

	// Close: idempotent; writes are refused; unknown ids are not found.
	sh2, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID, Cwd: "sub/../", Cols: 80, Rows: 24})
	if err == nil || pyro.ErrorCode(err) != "path_outside_workspace" {
		t.Errorf("cwd with ..: %v %+v", err, sh2)
	}
	sh2, err = c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID, Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if cl, err := c.CloseShell(ctx, pyro.ShellRequest{Workspace: w.WorkspaceID, ShellID: sh2.ShellID}); err != nil || cl.State != pyro.ShellClosed {
			t.Fatalf("close: %v %+v", err, cl)
		}
	}
	if _, err := c.WriteShell(ctx, pyro.WriteShellRequest{Workspace: w.WorkspaceID, ShellID: sh2.ShellID, Input: "echo hi"}); pyro.ErrorCode(err) != "shell_closed" {
		t.Errorf("write to closed shell: %v", err)
	}
	if _, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: "nosuchshell"}); pyro.ErrorCode(err) != "shell_not_found" {
		t.Errorf("unknown shell: %v", err)
	}
	if _, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID, Cols: 5}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("cols 5: %v", err)
	}
}

// 10 MiB through a PTY: nothing hangs, the buffer keeps the newest output,
// and a reader from 0 is told how much was dropped.
func TestShellLargeOutput(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID})
	if err != nil {
		t.Fatal(err)
	}
	s := &shellSession{t: t, c: c, ws: w.WorkspaceID, id: sh.ShellID}
	s.write("stty -echo; head -c 10485760 /dev/zero | tr '\\0' x; echo; echo DONE-$((40+2))")
	deadline := time.Now().Add(120 * time.Second)
	for {
		st, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Cursor: 0, MaxChars: 1})
		if err != nil {
			t.Fatal(err)
		}
		if st.OutputBytes >= 10<<20 {
			tail, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Cursor: st.OutputBytes - 64, WaitForIdleMs: 500})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tail.Output, "DONE-42") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 MiB did not come through: %d bytes", st.OutputBytes)
		}
		time.Sleep(500 * time.Millisecond)
	}
	first, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Cursor: 0})
	if err != nil {
		t.Fatal(err)
	}
	if first.DroppedBytes <= 0 || first.Cursor != first.DroppedBytes || !strings.Contains(first.Output, "dropped") {
		t.Fatalf("read from 0 after 10 MiB: cursor %d dropped %d output %.80q", first.Cursor, first.DroppedBytes, first.Output)
	}
	if !first.More || len(first.Output) > 70000 {
		t.Errorf("max_chars not applied: more=%v len=%d", first.More, len(first.Output))
	}
}

// Full-screen programs under plain: the screen as a person sees it.
func TestShellFullScreenPlain(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12-build")
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID, Cols: 100, Rows: 25})
	if err != nil {
		t.Fatal(err)
	}
	s := &shellSession{t: t, c: c, ws: w.WorkspaceID, id: sh.ShellID}
	s.write("top -d 1")
	out := s.readUntil("load average")
	for _, want := range []string{"Tasks:", "PID", "COMMAND"} {
		if !strings.Contains(out.Output, want) {
			t.Errorf("top screen lacks %q:\n%s", want, out.Output)
		}
	}
	if strings.ContainsAny(out.Output, "\x1b\r\b") {
		t.Errorf("plain top has control characters: %q", out.Output)
	}
	s.write("q")
	s.readUntil("#")
	s.write("vi notes.txt")
	s.readUntil("~")
	for _, keys := range []string{"ihello from vi", "\x1b"} {
		if _, err := c.WriteShell(ctx, pyro.WriteShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Input: keys, NoNewline: true}); err != nil {
			t.Fatal(err)
		}
	}
	s.readUntil("hello from vi")
	s.write(":wq")
	s.readUntil("#")
	r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "cat notes.txt"})
	if err != nil || r.Stdout != "hello from vi\n" {
		t.Fatalf("vi wrote %v %+v", err, r)
	}
}

// kill -9 of the supervisor while a shell is open: calls fail clearly, none
// hangs, and after start the old shell is reported gone.
func TestShellSupervisorRestart(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12")
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID})
	if err != nil {
		t.Fatal(err)
	}
	killSupervisor(t, state, w.WorkspaceID)
	start := time.Now()
	if _, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, WaitForIdleMs: 1000}); pyro.ErrorCode(err) != "workspace_stopped" {
		t.Errorf("read while stopped: %v", err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	_, err = c.WriteShell(ctx, pyro.WriteShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Input: "true"})
	if pyro.ErrorCode(err) != "shell_not_found" || !strings.Contains(err.Error(), "shell open") {
		t.Errorf("old shell after restart: %v", err)
	}
	if time.Since(start) > 60*time.Second {
		t.Errorf("calls took %s", time.Since(start))
	}
}

// TestResizeShellSize: a resize names both sizes; a zero or out-of-range
// one is invalid_argument before any workspace is looked up.
func TestResizeShellSize(t *testing.T) {
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, req := range []pyro.ResizeShellRequest{
		{Workspace: "nope", ShellID: "x"},
		{Workspace: "nope", ShellID: "x", Cols: 120},
		{Workspace: "nope", ShellID: "x", Cols: 9, Rows: 30},
		{Workspace: "nope", ShellID: "x", Cols: 120, Rows: 201},
	} {
		if _, err := c.ResizeShell(t.Context(), req); pyro.ErrorCode(err) != pyro.CodeInvalidArgument {
			t.Errorf("ResizeShell(%+v): %v; want %s", req, err, pyro.CodeInvalidArgument)
		}
	}
	if _, err := c.ResizeShell(t.Context(), pyro.ResizeShellRequest{Workspace: "nope", ShellID: "x", Cols: 120, Rows: 30}); pyro.ErrorCode(err) != pyro.CodeWorkspaceNotFound {
		t.Errorf("a valid size reaches the workspace lookup: %v", err)
	}
}
