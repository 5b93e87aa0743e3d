//go:build linux

package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

const limit = 1 << 20

func execReq(argv ...string) *agentproto.ExecRequest {
	return &agentproto.ExecRequest{Argv: argv, MaxStdout: limit, MaxStderr: limit}
}

// run executes req and requires a result.
func run(t *testing.T, sess *yamux.Session, req *agentproto.ExecRequest) (reply, agentproto.ExecResult) {
	t.Helper()
	r := call(t, sess, agentproto.Request{Op: agentproto.OpExec, Exec: req})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.started == nil || r.started.Pid <= 0 {
		t.Fatalf("no Started frame before the result: %+v", r.started)
	}
	var res agentproto.ExecResult
	mustUnmarshal(t, r.result, &res)
	return r, res
}

// waitGroupGone fails unless process group pgid is empty within a second.
func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.Kill(-pgid, 0)
		if err == unix.ESRCH {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still exists (kill: %v)", pgid, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecOutputsAndExitCode(t *testing.T) {
	sess := startAgent(t, Options{})
	r, res := run(t, sess, execReq("sh", "-c", "echo out; echo err >&2; exit 7"))
	if string(r.stdout) != "out\n" || string(r.stderr) != "err\n" {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	want := agentproto.ExecResult{ExitCode: 7, StdoutBytes: 4, StderrBytes: 4, DurationMs: res.DurationMs, Timing: res.Timing}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	// The agent's account of the call: its parts within its whole.
	tm := res.Timing
	if tm == nil || tm.PlanUs < 0 || tm.StartUs <= 0 || tm.RunUs <= 0 || tm.SyncUs <= 0 || tm.OutputUs < 0 ||
		tm.PlanUs+tm.StartUs+tm.RunUs+tm.OutputUs+tm.SyncUs > tm.TotalUs {
		t.Errorf("timing %+v", tm)
	}
}

func TestExecKilledBySignal(t *testing.T) {
	sess := startAgent(t, Options{})
	_, res := run(t, sess, execReq("sh", "-c", "kill -TERM $$"))
	if res.ExitCode != -1 || res.Signal != "TERM" || res.TimedOut {
		t.Errorf("result %+v", res)
	}
}

func TestExecStdin(t *testing.T) {
	sess := startAgent(t, Options{})
	req := execReq("cat")
	req.Stdin = bytes.Repeat([]byte("pyro"), 100_000) // more than a pipe buffer
	r, res := run(t, sess, req)
	if !bytes.Equal(r.stdout, req.Stdin) || res.ExitCode != 0 {
		t.Errorf("got %d bytes, exit %d", len(r.stdout), res.ExitCode)
	}
	// Without stdin, cat reads /dev/null and ends at once.
	r, res = run(t, sess, execReq("cat"))
	if len(r.stdout) != 0 || res.ExitCode != 0 {
		t.Errorf("no stdin: %q, exit %d", r.stdout, res.ExitCode)
	}
}

func TestExecCwdAndEnv(t *testing.T) {
	sess := startAgent(t, Options{})
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := execReq("sh", "-c", `pwd -P; echo "$FOO|$HOME|$TERM|$PATH"`)
	req.Cwd = dir
	req.Env = []string{"FOO=bar=baz", "HOME=/nowhere"}
	r, _ := run(t, sess, req)
	want := dir + "\nbar=baz|/nowhere|dumb|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
	if string(r.stdout) != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
	r, _ = run(t, sess, execReq("pwd"))
	if string(r.stdout) != "/\n" {
		t.Errorf("default cwd %q", r.stdout)
	}
}

func TestExecFailures(t *testing.T) {
	sess := startAgent(t, Options{})
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		req  *agentproto.ExecRequest
		code string
	}{
		"no exec":       {nil, agentproto.ErrCodeBadRequest},
		"empty argv":    {&agentproto.ExecRequest{}, agentproto.ErrCodeBadRequest},
		"bad env":       {&agentproto.ExecRequest{Argv: []string{"true"}, Env: []string{"NOEQUALS"}}, agentproto.ErrCodeBadRequest},
		"missing cwd":   {&agentproto.ExecRequest{Argv: []string{"true"}, Cwd: "/does/not/exist"}, agentproto.ErrCodeExecFailed},
		"cwd is a file": {&agentproto.ExecRequest{Argv: []string{"true"}, Cwd: file}, agentproto.ErrCodeExecFailed},
		"not in PATH":   {&agentproto.ExecRequest{Argv: []string{"no-such-command-pyro"}}, agentproto.ErrCodeExecFailed},
		"not runnable":  {&agentproto.ExecRequest{Argv: []string{file}}, agentproto.ErrCodeExecFailed},
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, sess, agentproto.Request{Op: agentproto.OpExec, Exec: tc.req})
			wantError(t, r, tc.code)
			if r.err.Message == "" {
				t.Error("empty error message")
			}
		})
	}
}

func TestExecOutputCap(t *testing.T) {
	sess := startAgent(t, Options{})
	req := execReq("sh", "-c", "head -c 5242880 /dev/zero; echo oops >&2")
	req.MaxStderr = 0
	r, res := run(t, sess, req)
	// The head and the tail of the cap, around the omission marker.
	if n := len(r.stdout); n > limit || n < limit-markerReserve || !bytes.Contains(r.stdout, []byte("bytes omitted ...]")) || len(r.stderr) != 0 {
		t.Errorf("forwarded %d stdout, %d stderr bytes", len(r.stdout), len(r.stderr))
	}
	if res.StdoutBytes != 5<<20 || !res.StdoutTruncated || res.StderrBytes != 5 || !res.StderrTruncated || res.ExitCode != 0 {
		t.Errorf("result %+v", res)
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	sess := startAgent(t, Options{})
	req := execReq("sh", "-c", "sleep 100 & sleep 100")
	req.TimeoutMs = 300
	start := time.Now()
	r, res := run(t, sess, req)
	if !res.TimedOut || res.ExitCode != -1 || res.Signal != "KILL" {
		t.Errorf("result %+v", res)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	waitGroupGone(t, r.started.Pid)
}

func TestExecCancelKillsGroup(t *testing.T) {
	sess := startAgent(t, Options{})
	stream := send(t, sess, agentproto.Request{Op: agentproto.OpExec, Exec: execReq("sh", "-c", "sleep 100 & sleep 100")})
	kind, payload, err := agentproto.ReadFrame(stream)
	if err != nil || kind != agentproto.FrameStarted {
		t.Fatalf("first frame %d %s, %v", kind, payload, err)
	}
	var started agentproto.Started
	mustUnmarshal(t, payload, &started)
	if err := unix.Kill(-started.Pid, 0); err != nil {
		t.Fatalf("group not running: %v", err)
	}
	stream.Close()
	waitGroupGone(t, started.Pid)
}

// A host that stops reading must not wedge the call once it cancels.
func TestExecCancelWhileOutputBlocked(t *testing.T) {
	sess := startAgent(t, Options{})
	req := execReq("sh", "-c", "yes")
	req.MaxStdout = 1 << 30
	stream := send(t, sess, agentproto.Request{Op: agentproto.OpExec, Exec: req})
	kind, payload, err := agentproto.ReadFrame(stream)
	if err != nil || kind != agentproto.FrameStarted {
		t.Fatalf("first frame %d %s, %v", kind, payload, err)
	}
	var started agentproto.Started
	mustUnmarshal(t, payload, &started)
	time.Sleep(100 * time.Millisecond) // let the stream window fill up
	stream.Close()
	waitGroupGone(t, started.Pid)
	// The session still serves new calls.
	if r := call(t, sess, agentproto.Request{Op: agentproto.OpHello}); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestExecBackgroundChildHoldingOutput(t *testing.T) {
	sess := startAgent(t, Options{})
	start := time.Now()
	r, res := run(t, sess, execReq("sh", "-c", "sleep 5 & echo done"))
	if string(r.stdout) != "done\n" || res.ExitCode != 0 {
		t.Errorf("stdout %q, result %+v", r.stdout, res)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v for a background child's pipe", d)
	}
	unix.Kill(-r.started.Pid, unix.SIGKILL)
}

func TestExecConcurrent(t *testing.T) {
	sess := startAgent(t, Options{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			req := execReq("sh", "-c", `echo "$0"; echo "e$0" >&2; exit $(($0 % 5))`, fmt.Sprint(i))
			r, err := tryCall(sess, agentproto.Request{Op: agentproto.OpExec, Exec: req})
			if err == nil && r.err != nil {
				err = r.err
			}
			if err != nil {
				t.Error(err)
				return
			}
			var res agentproto.ExecResult
			if err := json.Unmarshal(r.result, &res); err != nil {
				t.Error(err)
				return
			}
			if strings.TrimSpace(string(r.stdout)) != fmt.Sprint(i) || strings.TrimSpace(string(r.stderr)) != fmt.Sprint("e", i) || res.ExitCode != i%5 {
				t.Errorf("call %d: stdout %q stderr %q exit %d", i, r.stdout, r.stderr, res.ExitCode)
			}
		})
	}
	wg.Wait()
}

// Stdin streamed as frames reaches the command while it runs: it answers
// the first line before the second is sent; FrameDataEnd closes stdin.
func TestExecStdinStream(t *testing.T) {
	sess := startAgent(t, Options{})
	req := execReq("sh", "-c", `read a; echo "got $a"; read b; echo "got $b"; cat; echo eof`)
	req.StdinStream = true
	st := send(t, sess, agentproto.Request{Op: agentproto.OpExec, Exec: req})
	defer st.Close()
	if err := agentproto.WriteFrame(st, agentproto.FrameData, []byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for !bytes.Contains(out, []byte("got ping\n")) {
		kind, payload, err := agentproto.ReadFrame(st)
		if err != nil {
			t.Fatalf("reading: %v (so far %q)", err, out)
		}
		if kind == agentproto.FrameStdout {
			out = append(out, payload...)
		} else if kind != agentproto.FrameStarted {
			t.Fatalf("frame %d before the first answer", kind)
		}
	}
	for _, f := range []struct {
		kind byte
		data string
	}{{agentproto.FrameData, "pong\n"}, {agentproto.FrameData, "rest"}, {agentproto.FrameDataEnd, ""}} {
		if err := agentproto.WriteFrame(st, f.kind, []byte(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	r := readReply(t, st)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := string(out) + string(r.stdout); got != "got ping\ngot pong\nresteof\n" {
		t.Errorf("stdout %q", got)
	}
}

// NoOutputCap forwards everything: the host keeps and caps it.
func TestExecNoOutputCap(t *testing.T) {
	sess := startAgent(t, Options{})
	req := execReq("sh", "-c", "head -c 3000000 /dev/zero")
	req.MaxStdout = agentproto.NoOutputCap
	r, res := run(t, sess, req)
	if len(r.stdout) != 3000000 || res.StdoutTruncated || res.StdoutBytes != 3000000 {
		t.Errorf("forwarded %d bytes, result %+v", len(r.stdout), res)
	}
}
