//go:build linux

package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// shellClient is the host side of one shell stream.
type shellClient struct {
	t      *testing.T
	stream net.Conn
	pid    int

	mu     sync.Mutex
	out    bytes.Buffer
	result *agentproto.ShellExit
	err    error // an error frame or a broken stream
	done   chan struct{}
}

func openShell(t *testing.T, sess *yamux.Session, req agentproto.ShellRequest) *shellClient {
	t.Helper()
	stream := send(t, sess, agentproto.Request{Op: agentproto.OpShell, Shell: &req})
	t.Cleanup(func() { stream.Close() })
	kind, payload, err := agentproto.ReadFrame(stream)
	if err != nil {
		t.Fatal(err)
	}
	if kind == agentproto.FrameError {
		t.Fatalf("shell refused: %s", payload)
	}
	if kind != agentproto.FrameStarted {
		t.Fatalf("first frame has kind %d: %s", kind, payload)
	}
	var st agentproto.Started
	mustUnmarshal(t, payload, &st)
	c := &shellClient{t: t, stream: stream, pid: st.Pid, done: make(chan struct{})}
	go c.read()
	return c
}

func (c *shellClient) read() {
	defer close(c.done)
	for {
		kind, payload, err := agentproto.ReadFrame(c.stream)
		c.mu.Lock()
		switch {
		case err != nil:
			c.err = err
		case kind == agentproto.FrameFlushing: // a slow flush on a loaded host
		case kind == agentproto.FrameStdout:
			c.out.Write(payload)
		case kind == agentproto.FrameResult:
			c.result = new(agentproto.ShellExit)
			c.err = json.Unmarshal(payload, c.result)
		case kind == agentproto.FrameError:
			c.err = fmt.Errorf("error frame: %s", payload)
		default:
			c.err = fmt.Errorf("unexpected frame kind %d", kind)
		}
		end := c.err != nil || c.result != nil
		c.mu.Unlock()
		if end {
			return
		}
	}
}

func (c *shellClient) input(s string) {
	c.t.Helper()
	if err := agentproto.WriteFrame(c.stream, agentproto.FrameData, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *shellClient) control(ctl agentproto.ShellControl) {
	c.t.Helper()
	if err := agentproto.WriteJSON(c.stream, agentproto.FrameControl, ctl); err != nil {
		c.t.Fatal(err)
	}
}

func (c *shellClient) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// waitOutput waits until the output contains want.
func (c *shellClient) waitOutput(want string) {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(c.output(), want) {
		if time.Now().After(deadline) {
			c.t.Fatalf("no %q in the output %q", want, c.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the result.
func (c *shellClient) wait() agentproto.ShellExit {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no result; output %q", c.output())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		c.t.Fatal(c.err)
	}
	return *c.result
}

func shellReq(argv ...string) agentproto.ShellRequest {
	return agentproto.ShellRequest{Argv: argv, Cols: 80, Rows: 24}
}

// waitPidGone fails unless pid has exited and been reaped within wait.
func waitPidGone(t *testing.T, pid int, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := unix.Kill(pid, 0)
		if err == unix.ESRCH {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still exists (kill: %v)", pid, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childNamed finds a child of ppid whose command name is comm.
func childNamed(ppid int, comm string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.HasSuffix(s[:i], "("+comm) {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			return pid
		}
	}
	return 0
}

func TestShellInteractive(t *testing.T) {
	sess := startAgent(t, Options{})
	c := openShell(t, sess, shellReq("/bin/sh"))
	c.input("echo $((6*7))\n")
	c.waitOutput("42")
	c.input("echo \"$TERM\" pid=$$\n")
	c.waitOutput(fmt.Sprintf("xterm-256color pid=%d", c.pid))
	c.input("exit 3\n")
	if res := c.wait(); res != (agentproto.ShellExit{ExitCode: 3}) {
		t.Fatalf("result %+v", res)
	}
	waitPidGone(t, c.pid, time.Second)
}

func TestShellResize(t *testing.T) {
	sess := startAgent(t, Options{})
	c := openShell(t, sess, shellReq("/bin/sh"))
	c.input("stty size\n")
	c.waitOutput("24 80")
	c.control(agentproto.ShellControl{Cols: 132, Rows: 43})
	c.input("stty size\n")
	c.waitOutput("43 132")
	c.control(agentproto.ShellControl{Cols: 5000, Rows: 1})    // out of range: ignored
	c.control(agentproto.ShellControl{Signal: "NOSUCHSIGNAL"}) // unknown: ignored
	c.input("stty size; exit\n")
	c.wait()
	if n := strings.Count(c.output(), "43 132"); n != 2 {
		t.Errorf("size after bad controls: %q", c.output())
	}
}

func TestShellSignalInterruptsForeground(t *testing.T) {
	sess := startAgent(t, Options{})
	c := openShell(t, sess, shellReq("/bin/sh"))
	c.input("sleep 100\n")
	var sleeper int
	deadline := time.Now().Add(5 * time.Second)
	for sleeper == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sleep did not start; output %q", c.output())
		}
		time.Sleep(10 * time.Millisecond)
		sleeper = childNamed(c.pid, "sleep")
	}
	c.control(agentproto.ShellControl{Signal: "INT"})
	waitPidGone(t, sleeper, 2*time.Second)
	c.input("echo after-$((1+1))\n")
	c.waitOutput("after-2")
	c.control(agentproto.ShellControl{Signal: "SIGKILL"})
	if res := c.wait(); res != (agentproto.ShellExit{ExitCode: -1, Signal: "KILL"}) {
		t.Fatalf("result %+v", res)
	}
}

func TestShellHostCloseHangsUp(t *testing.T) {
	sess := startAgent(t, Options{})
	c := openShell(t, sess, shellReq("/bin/sh", "-c", "sleep 100 & sleep 100"))
	time.Sleep(50 * time.Millisecond)
	c.stream.Close()
	waitPidGone(t, c.pid, 2*time.Second)
	waitGroupGone(t, c.pid)

	// A program that ignores SIGHUP gets SIGKILL after the grace period.
	c = openShell(t, sess, shellReq("/bin/sh", "-c", "trap '' HUP; echo armed; sleep 100; true"))
	c.waitOutput("armed")
	start := time.Now()
	c.stream.Close()
	waitPidGone(t, c.pid, shellHangupGrace+2*time.Second)
	if d := time.Since(start); d < shellHangupGrace-100*time.Millisecond {
		t.Errorf("killed after %v, before the grace period", d)
	}
	waitGroupGone(t, c.pid)
	// The session still serves calls.
	if r := call(t, sess, agentproto.Request{Op: agentproto.OpHello}); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestShellLargeOutput(t *testing.T) {
	sess := startAgent(t, Options{})
	const size = 10 << 20
	c := openShell(t, sess, shellReq("/bin/sh", "-c", `head -c 10485760 /dev/zero | tr '\0' x`))
	if res := c.wait(); res != (agentproto.ShellExit{}) {
		t.Fatalf("result %+v", res)
	}
	out := c.output()
	if len(out) != size || strings.Trim(out, "x") != "" {
		t.Fatalf("got %d bytes (%d x), want %d x", len(out), strings.Count(out, "x"), size)
	}
}

func TestShellExitStatus(t *testing.T) {
	sess := startAgent(t, Options{})
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := shellReq("sh", "-c", `pwd -P; echo "$TERM"; kill -TERM $$`)
	req.Cwd = dir
	req.Env = []string{"TERM=vt100"}
	c := openShell(t, sess, req)
	if res := c.wait(); res != (agentproto.ShellExit{ExitCode: -1, Signal: "TERM"}) {
		t.Fatalf("result %+v", res)
	}
	if out := c.output(); out != dir+"\r\nvt100\r\n" {
		t.Errorf("output %q", out)
	}
}

func TestShellBadRequests(t *testing.T) {
	sess := startAgent(t, Options{})
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		req  *agentproto.ShellRequest
		code string
	}{
		"no shell":      {nil, agentproto.ErrCodeBadRequest},
		"empty argv":    {&agentproto.ShellRequest{Cols: 80, Rows: 24}, agentproto.ErrCodeBadRequest},
		"no size":       {&agentproto.ShellRequest{Argv: []string{"sh"}}, agentproto.ErrCodeBadRequest},
		"too wide":      {&agentproto.ShellRequest{Argv: []string{"sh"}, Cols: 1001, Rows: 24}, agentproto.ErrCodeBadRequest},
		"bad env":       {&agentproto.ShellRequest{Argv: []string{"sh"}, Cols: 80, Rows: 24, Env: []string{"X"}}, agentproto.ErrCodeBadRequest},
		"missing cwd":   {&agentproto.ShellRequest{Argv: []string{"sh"}, Cols: 80, Rows: 24, Cwd: "/does/not/exist"}, agentproto.ErrCodeExecFailed},
		"cwd is a file": {&agentproto.ShellRequest{Argv: []string{"sh"}, Cols: 80, Rows: 24, Cwd: file}, agentproto.ErrCodeExecFailed},
		"not in PATH":   {&agentproto.ShellRequest{Argv: []string{"no-such-command-pyro"}, Cols: 80, Rows: 24}, agentproto.ErrCodeExecFailed},
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, sess, agentproto.Request{Op: agentproto.OpShell, Shell: tc.req})
			wantError(t, r, tc.code)
		})
	}
}

func TestSignalByName(t *testing.T) {
	for name, want := range map[string]unix.Signal{
		"INT": unix.SIGINT, "SIGTERM": unix.SIGTERM, "hup": unix.SIGHUP, "WINCH": unix.SIGWINCH,
		"USR1": unix.SIGUSR1, "sigcont": unix.SIGCONT, "NOPE": 0, "": 0,
	} {
		if got := signalByName(name); got != want {
			t.Errorf("signalByName(%q) = %v, want %v", name, got, want)
		}
	}
}

// A program that never reads its terminal must not keep the agent from
// noticing the host going away, however much input the host sent.
func TestShellUnreadInputAndHostClose(t *testing.T) {
	// Restored once the agent has stopped (cleanups run last first).
	old := shellInputStall
	t.Cleanup(func() { shellInputStall = old })
	shellInputStall = 200 * time.Millisecond
	sess := startAgent(t, Options{})
	c := openShell(t, sess, shellReq("/bin/sh", "-c", "echo armed; exec sleep 100"))
	c.waitOutput("armed")
	chunk := bytes.Repeat([]byte("y"), 32<<10)
	wrote := make(chan error, 1)
	go func() {
		for range 64 { // 2 MiB, far more than the PTY and the queue hold
			if err := agentproto.WriteFrame(c.stream, agentproto.FrameData, chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("input writes blocked")
	}
	c.stream.Close()
	waitPidGone(t, c.pid, 2*time.Second)
}

func countFds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// Shells that end in every way leave no descriptor behind.
func TestShellNoFdLeak(t *testing.T) {
	sess := startAgent(t, Options{})
	c := openShell(t, sess, shellReq("/bin/sh", "-c", "exit 0"))
	c.wait()
	before := countFds(t)
	for range 3 {
		c = openShell(t, sess, shellReq("/bin/sh", "-c", "echo hi"))
		c.wait()
		c = openShell(t, sess, shellReq("/bin/sh"))
		c.input("echo ready\n")
		c.waitOutput("ready")
		c.stream.Close()
		waitPidGone(t, c.pid, 2*time.Second)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		after := countFds(t)
		if after <= before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, %d before", after, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
