//go:build linux

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Timings and bounds of a shell call.
const (
	// shellDrainIdle: once the program exited, the PTY is read until EIO or
	// until it stays silent this long (a background child may hold it open).
	shellDrainIdle = 250 * time.Millisecond
	// shellDrainMax bounds the whole drain after the exit, for a background
	// child that keeps writing.
	shellDrainMax = 2 * time.Second
	// shellHangupGrace is how long a hung-up session has between SIGHUP and
	// SIGKILL.
	shellHangupGrace = 2 * time.Second
	// shellInputFrames is how many input frames may wait for the PTY.
	shellInputFrames = 16
	maxShellDim      = 1000
)

// shellInputStall: once the input queue has been full this long (the program
// does not read its terminal), input is dropped until there is room again,
// so that the stream keeps being read and a host closing it is noticed. A
// variable for tests.
var shellInputStall = 5 * time.Second

// shell runs req.Argv on a new PTY as a session leader and relays the
// terminal both ways until the program exits or the host goes away.
func (s *server) shell(stream net.Conn, fw *frameWriter, req *agentproto.ShellRequest) error {
	if req == nil || len(req.Argv) == 0 {
		return wireError(agentproto.ErrCodeBadRequest, "shell needs a non-empty argv")
	}
	if req.Cols < 1 || req.Cols > maxShellDim || req.Rows < 1 || req.Rows > maxShellDim {
		return wireError(agentproto.ErrCodeBadRequest, "terminal size %dx%d: cols and rows must be 1..%d", req.Cols, req.Rows, maxShellDim)
	}
	extra := req.Env
	if !hasEnvKey(extra, "TERM") {
		extra = append([]string{"TERM=xterm-256color"}, extra...)
	}
	env, err := buildEnv(extra)
	if err != nil {
		return wireError(agentproto.ErrCodeBadRequest, "%v", err)
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := checkDir(cwd); err != nil {
		return err
	}
	path, err := lookPath(req.Argv[0], env, cwd)
	if err != nil {
		return wireError(agentproto.ErrCodeExecFailed, "%v", err)
	}

	master, pid, exited, err := s.startOnPTY(path, req.Argv, env, cwd, req.Cols, req.Rows)
	if err != nil {
		return wireError(agentproto.ErrCodeExecFailed, "starting %s: %v", req.Argv[0], err)
	}
	sh := &shellCall{
		stream:   stream,
		fw:       fw,
		master:   master,
		pid:      pid,
		input:    make(chan []byte, shellInputFrames),
		quit:     make(chan struct{}),
		hostGone: make(chan struct{}),
	}
	return sh.run(exited)
}

// hasEnvKey reports whether env (KEY=VALUE entries) sets key.
func hasEnvKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// checkDir requires dir to be an existing directory (a command's cwd).
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return wireError(agentproto.ErrCodeExecFailed, "cwd %s does not exist", dir)
	case err != nil:
		return wireError(agentproto.ErrCodeExecFailed, "cwd: %v", err)
	case !st.IsDir():
		return wireError(agentproto.ErrCodeExecFailed, "cwd %s is not a directory", dir)
	}
	return nil
}

// startOnPTY opens a PTY of the given size and starts argv on it as the
// leader of a new session with the PTY as its controlling terminal. It
// returns the master end, which is pollable (deadlines and Close unblock its
// readers and writers).
func (s *server) startOnPTY(path string, argv, env []string, cwd string, cols, rows int) (*os.File, int, <-chan syscall.WaitStatus, error) {
	ptm, tty, err := pty.Open()
	if err != nil {
		return nil, 0, nil, fmt.Errorf("opening a pty: %w", err)
	}
	defer tty.Close() // the child has its own copies once started
	master, err := pollable(ptm)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := pty.Setsize(tty, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		master.Close()
		return nil, 0, nil, fmt.Errorf("setting the terminal size: %w", err)
	}
	fd := tty.Fd() // blocking mode, as programs expect of their terminal
	pid, exited, err := s.reaper.start(path, argv, &syscall.ProcAttr{
		Dir:   cwd,
		Env:   env,
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	if err != nil {
		master.Close()
		return nil, 0, nil, err
	}
	return master, pid, exited, nil
}

// pollable replaces f (which pty.Open has put into blocking mode by asking
// for its descriptor) with a non-blocking duplicate registered with the
// runtime poller, so that deadlines and Close work on it. It closes f.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := sc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup pty master: %w", derr)
	}
	// O_NONBLOCK belongs to the open file description, shared with f (closed
	// right after): NewFile sees it and makes the file pollable.
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("pty master: %w", err)
	}
	return os.NewFile(uintptr(nfd), "/dev/ptmx"), nil
}

// shellCall is one running shell: the PTY master, the session leader and the
// goroutines relaying between them and the host.
type shellCall struct {
	stream net.Conn
	fw     *frameWriter
	master *os.File
	pid    int

	input    chan []byte   // host input for the writer goroutine
	quit     chan struct{} // closed when the call is ending
	hostGone chan struct{} // closed by the reader when the stream ends

	ended   atomic.Bool  // the session leader has been reaped
	exitAt  atomic.Int64 // UnixNano of the exit, once ended
	workers sync.WaitGroup
}

func (sh *shellCall) run(exited <-chan syscall.WaitStatus) error {
	pumpDone := make(chan struct{})
	defer func() {
		// Every path ends here: the goroutines stop, the master closes.
		if !sh.ended.Load() {
			// Only after a panic: the reaper collects the leader.
			_ = unix.Kill(-sh.pid, unix.SIGKILL)
		}
		close(sh.quit)
		_ = sh.stream.SetReadDeadline(time.Now())
		sh.master.Close()
		sh.workers.Wait()
	}()

	hostLeft := sh.fw.json(agentproto.FrameStarted, agentproto.Started{Pid: sh.pid}) != nil
	sh.workers.Go(sh.read)
	sh.workers.Go(sh.write)
	sh.workers.Go(func() { defer close(pumpDone); sh.pump() })

	var ws syscall.WaitStatus
	if !hostLeft {
		select {
		case ws = <-exited:
		case <-sh.hostGone:
			hostLeft = true
		}
	}
	if hostLeft {
		sh.fw.abort()
		sh.hangup(exited)
		return errCanceled
	}

	// The program exited: collect what it (and whatever still holds the
	// PTY) wrote, within bounds.
	sh.exitAt.Store(time.Now().UnixNano())
	sh.ended.Store(true)
	_ = sh.master.SetReadDeadline(time.Now().Add(shellDrainIdle))
	select {
	case <-pumpDone:
	case <-sh.hostGone:
		hostLeft = true
		sh.fw.abort()
		<-pumpDone
	}
	if hostLeft {
		return errCanceled
	}
	code, sig := exitStatus(ws)
	return sh.fw.json(agentproto.FrameResult, agentproto.ShellExit{ExitCode: code, Signal: sig})
}

// hangup ends the session of a host that went away: SIGHUP (and SIGCONT, for
// a stopped job) to the leader's process group, SIGKILL if the leader is
// still there after a grace period. It returns once the leader is reaped.
func (sh *shellCall) hangup(exited <-chan syscall.WaitStatus) {
	_ = unix.Kill(-sh.pid, unix.SIGHUP)
	_ = unix.Kill(-sh.pid, unix.SIGCONT)
	t := time.NewTimer(shellHangupGrace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = unix.Kill(-sh.pid, unix.SIGKILL)
		<-exited
	}
	sh.ended.Store(true)
}

// pump forwards the PTY's output to the host until the PTY reports EIO (no
// process holds the terminal any more), or, after the exit, until it has been
// silent for shellDrainIdle or shellDrainMax has passed.
func (sh *shellCall) pump() {
	defer recoverLog("shell output")
	buf := make([]byte, chunkSize)
	for {
		if sh.ended.Load() {
			if at := sh.exitAt.Load(); at != 0 && time.Since(time.Unix(0, at)) > shellDrainMax {
				return
			}
			_ = sh.master.SetReadDeadline(time.Now().Add(shellDrainIdle))
		}
		n, err := sh.master.Read(buf)
		if n > 0 {
			// A failed write means the host is gone; the reader notices.
			// Keep reading so the program never blocks on a full terminal.
			_ = sh.fw.frame(agentproto.FrameStdout, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// read takes the host's frames: input for the PTY and control messages.
func (sh *shellCall) read() {
	// Any end of the stream, a broken frame included, hangs the session up.
	defer close(sh.hostGone)
	defer recoverLog("shell input")
	dropped, stalled := false, false
	for {
		kind, payload, err := agentproto.ReadFrame(sh.stream)
		if err != nil {
			if errors.Is(err, agentproto.ErrFrameTooLarge) {
				log.Printf("shell %d: %v; hanging up", sh.pid, err)
			}
			return
		}
		switch kind {
		case agentproto.FrameData:
			if len(payload) == 0 {
				continue
			}
			var queued bool
			queued, stalled = sh.queueInput(payload, stalled)
			if !queued {
				select {
				case <-sh.quit:
					return
				default:
				}
				if !dropped {
					log.Printf("shell %d: dropping input the program does not read", sh.pid)
					dropped = true
				}
			}
		case agentproto.FrameControl:
			sh.control(payload)
		default:
			log.Printf("shell %d: ignoring frame kind %d", sh.pid, kind)
		}
	}
}

// queueInput hands p to the writer. It gives up (dropping p) when the call
// ends, when the queue stays full for shellInputStall, or at once while the
// queue is still full after such a stall. It returns whether p was queued
// and whether the queue is stalled.
func (sh *shellCall) queueInput(p []byte, stalled bool) (queued, stalledNow bool) {
	select {
	case sh.input <- p:
		return true, false
	default:
	}
	if stalled {
		return false, true
	}
	t := time.NewTimer(shellInputStall)
	defer t.Stop()
	select {
	case sh.input <- p:
		return true, false
	case <-sh.quit:
		return false, false
	case <-t.C:
		return false, true
	}
}

// write feeds queued input to the PTY. Once a write fails (the PTY is gone)
// the rest is discarded.
func (sh *shellCall) write() {
	defer recoverLog("shell input writer")
	var werr error
	for {
		select {
		case p := <-sh.input:
			if werr == nil {
				_, werr = sh.master.Write(p)
			}
		case <-sh.quit:
			return
		}
	}
}

// control applies one ShellControl: resize and/or signal. Bad controls are
// logged and ignored; the session goes on.
func (sh *shellCall) control(payload []byte) {
	var c agentproto.ShellControl
	if err := json.Unmarshal(payload, &c); err != nil {
		log.Printf("shell %d: bad control %q: %v", sh.pid, payload, err)
		return
	}
	if c.Cols != 0 || c.Rows != 0 {
		if c.Cols < 1 || c.Cols > maxShellDim || c.Rows < 1 || c.Rows > maxShellDim {
			log.Printf("shell %d: ignoring resize to %dx%d", sh.pid, c.Cols, c.Rows)
		} else if err := sh.resize(c.Cols, c.Rows); err != nil {
			log.Printf("shell %d: resize: %v", sh.pid, err)
		}
	}
	if c.Signal != "" {
		sig := signalByName(c.Signal)
		if sig == 0 {
			log.Printf("shell %d: unknown signal %q", sh.pid, c.Signal)
			return
		}
		if sh.ended.Load() {
			return
		}
		pgid := sh.foreground()
		if err := unix.Kill(-pgid, sig); err != nil {
			log.Printf("shell %d: signal %s to group %d: %v", sh.pid, c.Signal, pgid, err)
		}
	}
}

// resize sets the terminal size through the master, which delivers SIGWINCH
// to the foreground process group. (pty.Setsize would put the master back
// into blocking mode by asking for its descriptor.)
func (sh *shellCall) resize(cols, rows int) error {
	sc, err := sh.master.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := sc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)})
	}); err != nil {
		return err
	}
	return ierr
}

// foreground is the terminal's foreground process group, or the session
// leader's group when the terminal cannot tell.
func (sh *shellCall) foreground() int {
	pgid := 0
	if sc, err := sh.master.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			if g, err := unix.IoctlGetInt(int(fd), unix.TIOCGPGRP); err == nil {
				pgid = g
			}
		})
	}
	if pgid <= 0 {
		pgid = sh.pid
	}
	return pgid
}

// signalByName maps "INT", "SIGINT" or "sigint" to the signal; 0 if unknown.
func signalByName(name string) unix.Signal {
	name = strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	return unix.SignalNum(name)
}

// recoverLog keeps a panic in a helper goroutine from killing PID 1.
func recoverLog(what string) {
	if p := recover(); p != nil {
		log.Printf("panic in %s: %v\n%s", what, p, debug.Stack())
	}
}
