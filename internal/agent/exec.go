//go:build linux

package agent

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// pipeWait bounds how long output is still collected after the command
// exited: background children may hold its pipes open forever.
const pipeWait = 250 * time.Millisecond

// exec runs one command; received is when its request was read.
func (s *server) exec(stream net.Conn, fw *frameWriter, req *agentproto.ExecRequest, received time.Time) error {
	if req == nil || (len(req.Argv) == 0) == (req.Shell == "") {
		return wireError(agentproto.ErrCodeBadRequest, "exec needs either a non-empty argv or a shell command")
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if st, err := os.Stat(cwd); errors.Is(err, fs.ErrNotExist) {
		return wireError(agentproto.ErrCodeExecFailed, "cwd %s does not exist", cwd)
	} else if err != nil {
		return wireError(agentproto.ErrCodeExecFailed, "cwd: %v", err)
	} else if !st.IsDir() {
		return wireError(agentproto.ErrCodeExecFailed, "cwd %s is not a directory", cwd)
	}
	plan, err := s.plan(req, cwd)
	if err != nil {
		return err
	}

	start := time.Now()
	withStdin := len(req.Stdin) > 0 || req.StdinStream
	p, err := spawn(s.reaper, plan.path, plan.argv, plan.env, cwd, withStdin)
	if err != nil && plan.fast && plan.path != "/bin/sh" {
		// Not a program after all (a script without #!, gone meanwhile):
		// the shell runs it as it always did.
		plan.path, plan.argv = "/bin/sh", []string{"/bin/sh", "-c", req.Shell}
		p, err = spawn(s.reaper, plan.path, plan.argv, plan.env, cwd, withStdin)
	}
	if err != nil {
		return wireError(agentproto.ErrCodeExecFailed, "starting %s: %v", plan.argv[0], err)
	}
	defer p.close()
	started := time.Now()

	// A host that cannot take the Started frame is gone: same as a cancel.
	canceled := fw.json(agentproto.FrameStarted, agentproto.Started{Pid: p.pid}) != nil
	if canceled {
		killGroup(p.pid)
	}
	if p.stdin != nil && !req.StdinStream {
		go func() {
			_, _ = p.stdin.Write(req.Stdin)
			p.stdin.Close()
		}()
	}
	stdout := &output{kind: agentproto.FrameStdout, limit: req.MaxStdout}
	stderr := &output{kind: agentproto.FrameStderr, limit: req.MaxStderr}
	// The copier that finishes last closes drained: no goroutine just to
	// wait for the two (a wake-up less: 0.17 ms of an exec under TCG).
	drained := make(chan struct{})
	var copying atomic.Int32
	copying.Store(2)
	copyOut := func(o *output, r io.Reader) {
		o.drain(r, fw)
		if copying.Add(-1) == 0 {
			close(drained)
		}
	}
	go copyOut(stdout, p.stdout)
	go copyOut(stderr, p.stderr)

	var timeout <-chan time.Time
	if req.TimeoutMs > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	var hostGone <-chan struct{}
	if req.StdinStream {
		hostGone = feedStdin(stream, p.stdin)
	} else {
		hostGone = watchHost(stream)
	}
	timedOut := false
	var ws syscall.WaitStatus
wait:
	for {
		select {
		case ws = <-p.exited:
			break wait
		case <-timeout:
			timedOut = true
			killGroup(p.pid)
			timeout = nil
		case <-hostGone:
			canceled = true
			killGroup(p.pid)
			fw.abort()
			hostGone = nil
		}
	}
	exited := time.Now()
	duration := exited.Sub(start)

	select {
	case <-drained:
	case <-time.After(pipeWait):
	}
	p.stdout.Close()
	p.stderr.Close()
	<-drained
	if timedOut || canceled {
		// Whatever survived the first kill (or was forked meanwhile) goes too.
		killGroup(p.pid)
	}
	if canceled {
		return errCanceled
	}
	done := time.Now()
	if werr := fw.settle(); werr != nil {
		return werr
	}

	res := agentproto.ExecResult{
		TimedOut:        timedOut,
		StdoutBytes:     stdout.produced,
		StderrBytes:     stderr.produced,
		StdoutTruncated: stdout.truncated(),
		StderrTruncated: stderr.truncated(),
		DurationMs:      duration.Milliseconds(),
		Timing: &agentproto.ExecTiming{
			PlanUs:   start.Sub(received).Microseconds(),
			StartUs:  started.Sub(start).Microseconds(),
			RunUs:    exited.Sub(started).Microseconds(),
			OutputUs: done.Sub(exited).Microseconds(),
			SyncUs:   fw.flushed.Microseconds(),
			TotalUs:  time.Since(received).Microseconds(),
		},
	}
	res.ExitCode, res.Signal = exitStatus(ws)
	err = fw.json(agentproto.FrameResult, res)
	// The answer is out: sort the cgroups for the next command now.
	s.reaper.tidyGroups()
	return err
}

// plan is how to start req: its argv as given, or its shell command (see
// planShell).
func (s *server) plan(req *agentproto.ExecRequest, cwd string) (shellPlan, error) {
	if req.Shell != "" {
		p, err := s.planShell(req.Shell, req.Env, cwd)
		if err != nil {
			return p, wireError(agentproto.ErrCodeBadRequest, "%v", err)
		}
		return p, nil
	}
	env, err := buildEnv(req.Env)
	if err != nil {
		return shellPlan{}, wireError(agentproto.ErrCodeBadRequest, "%v", err)
	}
	path, err := lookPath(req.Argv[0], env, cwd)
	if err != nil {
		return shellPlan{}, wireError(agentproto.ErrCodeExecFailed, "%v", err)
	}
	return shellPlan{path: path, argv: req.Argv, env: env}, nil
}

// watchHost reports when the host closes or resets the stream. After its
// request the host never writes again, so any end of reading means "cancel".
func watchHost(stream net.Conn) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stream)
		close(gone)
	}()
	return gone
}

// feedStdin copies the FrameData frames the host sends into the command's
// stdin and closes it at FrameDataEnd; from then on it watches the stream
// like watchHost. Closing or breaking the stream means "cancel". A command
// that stops reading its stdin blocks the feeder (pipe backpressure): a
// cancel is then noticed when the command exits, reads, or times out.
func feedStdin(stream net.Conn, stdin *os.File) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		open := true
		defer func() {
			if open {
				stdin.Close()
			}
		}()
		for {
			kind, payload, err := agentproto.ReadFrame(stream)
			if err != nil {
				return
			}
			switch {
			case kind == agentproto.FrameData && open:
				if _, err := stdin.Write(payload); err != nil {
					// The command closed its stdin or exited: drop the rest.
					stdin.Close()
					open = false
				}
			case kind == agentproto.FrameDataEnd && open:
				stdin.Close()
				open = false
			}
		}
	}()
	return gone
}

func killGroup(pgid int) {
	_ = unix.Kill(-pgid, unix.SIGKILL)
}

func exitStatus(ws syscall.WaitStatus) (code int, signal string) {
	if !ws.Signaled() {
		return ws.ExitStatus(), ""
	}
	name := strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")
	if name == "" {
		name = strconv.Itoa(int(ws.Signal()))
	}
	return -1, name
}
