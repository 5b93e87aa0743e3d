package pyro_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
)

// watcher records output written to it and signals once it holds want.
type watcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newWatcher(want string) *watcher { return &watcher{want: want, seen: make(chan struct{})} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A background command followed by cursor while it runs, listed in the
// workspace's status, waited for, its secret redacted; kill; stop ends the
// rest; bad arguments are typed errors.
func TestCmdBackground(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: "debian:12",
		Secrets: []pyro.WorkspaceSecret{{Name: "TOKEN", Value: "tok-5ecret-9876"}}})
	ws := w.WorkspaceID

	start, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Background: true, SecretEnv: map[string]string{"TOKEN": ""},
		Command: `i=0; while [ ! -e /tmp/stop ]; do echo tick$i; i=$((i+1)); sleep 0.2; done; echo bye >&2; echo "token $TOKEN"; exit 5`})
	if err != nil {
		t.Fatal(err)
	}
	if start.State != pyro.CommandRunning || len(start.CommandID) < 8 {
		t.Fatalf("start: %+v", start)
	}

	// Follow by cursor until a few ticks came: every read starts where the
	// last one ended, nothing dropped.
	var out strings.Builder
	var cursor int64
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "tick3\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no ticks: %q", out.String())
		}
		l, err := c.CommandLogs(ctx, pyro.CommandLogsRequest{Workspace: ws, CommandID: start.CommandID, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if l.StdoutFrom != cursor || l.StdoutDroppedBytes != 0 || l.State != pyro.CommandRunning {
			t.Fatalf("read from %d: %+v", cursor, l)
		}
		out.WriteString(l.Stdout)
		cursor = l.NextCursor
		time.Sleep(100 * time.Millisecond)
	}
	st, err := c.WorkspaceStatus(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Commands) != 1 || st.Commands[0].CommandID != start.CommandID || !st.Commands[0].Background || st.Commands[0].State != pyro.CommandRunning {
		t.Fatalf("status lists %+v", st.Commands)
	}
	if sum, err := c.SummarizeWorkspace(ctx, ws); err != nil || len(sum.Commands) != 1 || sum.Commands[0].State != pyro.CommandRunning {
		t.Fatalf("summary lists %+v (%v)", sum, err)
	}
	if still, err := c.WaitCommand(ctx, pyro.WaitCommandRequest{Workspace: ws, CommandID: start.CommandID, TimeoutSeconds: 1}); err != nil || still.State != pyro.CommandRunning || still.ExitCode != nil {
		t.Fatalf("short wait: %+v %v", still, err)
	}
	if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: "touch /tmp/stop"}); err != nil {
		t.Fatal(err)
	}
	end, err := c.WaitCommand(ctx, pyro.WaitCommandRequest{Workspace: ws, CommandID: start.CommandID, TimeoutSeconds: 120})
	if err != nil || end.State != pyro.CommandExited || end.ExitCode == nil || *end.ExitCode != 5 || end.EndedAt == nil {
		t.Fatalf("wait: %+v %v", end, err)
	}
	rest, err := c.CommandLogs(ctx, pyro.CommandLogsRequest{Workspace: ws, CommandID: start.CommandID, Cursor: cursor})
	if err != nil {
		t.Fatal(err)
	}
	all := out.String() + rest.Stdout
	if !strings.HasSuffix(all, "token [REDACTED]\n") || strings.Contains(all, "5ecret") || rest.Stderr != "bye\n" || rest.More || rest.NextCursor != end.StdoutBytes {
		t.Fatalf("end of the output: %q, stderr %q, %+v", all[max(0, len(all)-80):], rest.Stderr, rest)
	}
	for i := 0; i < 4; i++ {
		if !strings.Contains(all, fmt.Sprintf("tick%d\n", i)) {
			t.Fatalf("tick%d missing in %q", i, all)
		}
	}

	// Kill ends the whole group; stop ends what still runs.
	sleeper, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Background: true, Command: "sleep 600 & sleep 600"})
	if err != nil {
		t.Fatal(err)
	}
	killed, err := c.KillCommand(ctx, pyro.CommandRequest{Workspace: ws, CommandID: sleeper.CommandID})
	if err != nil || killed.State != pyro.CommandKilled || killed.ExitCode == nil || *killed.ExitCode != 137 {
		t.Fatalf("kill: %+v %v", killed, err)
	}
	if ps, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: "pgrep -x sleep || echo none"}); err != nil || ps.Stdout != "none\n" {
		t.Fatalf("sleepers left after kill: %+v %v", ps, err)
	}
	left, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Background: true, Command: "sleep 600"})
	if err != nil {
		t.Fatal(err)
	}

	// Bad input: typed errors, nothing started.
	for _, bad := range []struct {
		call func() error
		code string
	}{
		{func() error {
			_, err := c.CommandLogs(ctx, pyro.CommandLogsRequest{Workspace: ws, CommandID: start.CommandID, Cursor: end.StdoutBytes + 1})
			return err
		}, "invalid_cursor"},
		{func() error {
			_, err := c.WaitCommand(ctx, pyro.WaitCommandRequest{Workspace: ws, CommandID: start.CommandID, TimeoutSeconds: 100000})
			return err
		}, "invalid_argument"},
		{func() error {
			_, err := c.CommandStatus(ctx, pyro.CommandRequest{Workspace: ws, CommandID: "nope"})
			return err
		}, "command_not_found"},
		{func() error {
			_, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Background: true, Command: "cat", Stdin: strings.NewReader("x")})
			return err
		}, "invalid_argument"},
	} {
		if err := bad.call(); pyro.ErrorCode(err) != bad.code {
			t.Errorf("want %s, got %v", bad.code, err)
		}
	}

	if _, err := c.StopWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CommandStatus(ctx, pyro.CommandRequest{Workspace: ws, CommandID: left.CommandID}); pyro.ErrorCode(err) != "command_not_found" {
		t.Fatalf("a command outlived stop: %v", err)
	}
	if ps, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: "pgrep -x sleep || echo none"}); err != nil || ps.Stdout != "none\n" {
		t.Fatalf("after stop/start: %+v %v", ps, err)
	}
}

// Foreground output arrives while the command runs (it waits for a file
// created only once its first line was seen), stdin is fed while it runs,
// and output cut by the cap is read whole by cursor.
func TestCmdStream(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	ws := createWorkspace(t, c, "debian:12").WorkspaceID

	live := newWatcher("first\n")
	go func() {
		select {
		case <-live.seen:
			_, _ = c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: "touch /tmp/go"})
		case <-ctx.Done():
		}
	}()
	res, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, TimeoutSeconds: 120, Stdout: live,
		Command: "echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo second"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.TimedOut || res.Stdout != "first\nsecond\n" || live.String() != res.Stdout {
		t.Fatalf("live exec: %+v, streamed %q", res, live.String())
	}

	pr, pw := io.Pipe()
	echo := newWatcher("got ping\n")
	go func() {
		_, _ = io.WriteString(pw, "ping\n")
		select {
		case <-echo.seen:
			_, _ = io.WriteString(pw, "pong\n")
		case <-ctx.Done():
		}
		pw.Close()
	}()
	res, err = c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, TimeoutSeconds: 120, Stdin: pr, Stdout: echo,
		Command: `read a; echo "got $a"; read b; echo "got $b"; cat; echo eof`})
	if err != nil || res.Stdout != "got ping\ngot pong\neof\n" || res.ExitCode != 0 {
		t.Fatalf("stdin: %+v %v", res, err)
	}

	var want strings.Builder
	for i := 1; i <= 30000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	res, err = c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: "seq 1 30000", MaxOutputBytes: 4096})
	if err != nil || !res.StdoutTruncated || len(res.Stdout) > 4096 || res.CommandID == "" {
		t.Fatalf("capped exec: truncated %v, %d bytes, id %q, %v", res.StdoutTruncated, len(res.Stdout), res.CommandID, err)
	}
	var got strings.Builder
	var cursor int64
	for {
		l, err := c.CommandLogs(ctx, pyro.CommandLogsRequest{Workspace: ws, CommandID: res.CommandID, Cursor: cursor, MaxBytes: 50000})
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(l.Stdout)
		cursor = l.NextCursor
		if !l.More {
			break
		}
	}
	if got.String() != want.String() {
		t.Fatalf("full output by cursor: %d bytes, want %d", got.Len(), want.Len())
	}

	// Many execs at once: each gets its own answer, though more finish
	// together than the table keeps finished commands.
	var wg sync.WaitGroup
	errs := make(chan error, 3*pyro.CommandsKept)
	for i := range 3 * pyro.CommandsKept {
		wg.Go(func() {
			r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: fmt.Sprintf("echo n%d", i)})
			if err == nil && r.Stdout != fmt.Sprintf("n%d\n", i) {
				err = fmt.Errorf("exec %d answered %q", i, r.Stdout)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// One-shot runs stream and take stdin too.
	runOut := newWatcher("abc")
	r, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "cat; echo", Stdin: strings.NewReader("abc"), Stdout: runOut})
	if err != nil || r.Stdout != "abc\n" || runOut.String() != "abc\n" {
		t.Fatalf("run: %+v %v (streamed %q)", r, err, runOut.String())
	}
}
