//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Version is the agent's own version, reported by OpHello.
const Version = "0.1.0"

// Options tunes Serve.
type Options struct {
	// PowerOff runs after the reply to OpShutdown has been sent. Nil means
	// shutdown only replies (tests, or an agent that is not PID 1).
	PowerOff func()
	// WorkspaceRoot is the only directory archive ops may touch; empty means
	// agentproto.WorkspaceRoot. Tests point it at a temporary directory.
	WorkspaceRoot string
	// ServicesRoot holds the services' state and logs; empty means
	// agentproto.ServicesRoot. Services outlive sessions: every Serve with the
	// same root shares one registry.
	ServicesRoot string
	// StagingRoot holds the archive puts' staging directories; it must be on
	// the filesystem of WorkspaceRoot. Empty means defaultStagingRoot.
	StagingRoot string
}

// Serve runs a yamux server on conn and handles every stream as one call until
// the session dies or ctx is done. It takes ownership of conn and closes it.
// It returns after all calls have finished; calls still running when the
// session dies are cancelled (their processes killed).
//
// Serve starts a process-wide SIGCHLD reaper that waits for every child
// (wait4(-1)): a process calling Serve must not start children with os/exec.
func Serve(ctx context.Context, conn io.ReadWriteCloser, opts Options) error {
	// The handshake first: it cuts off what the channel held before (see
	// agentproto.AcceptSession).
	sess, err := yamux.Server(&joinFrames{ReadWriteCloser: agentproto.GuestSession(conn)}, yamuxConfig())
	if err != nil {
		conn.Close()
		return err
	}
	s := &server{opts: opts, reaper: sharedReaper(), services: registryFor(servicesRoot(opts)), end: func() { sess.Close() }}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()

	var calls sync.WaitGroup
	defer calls.Wait()
	defer sess.Close()
	for {
		stream, err := sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		calls.Go(func() { s.handle(stream) })
	}
}

func yamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	// The host owns liveness; pings would only add traffic on an idle VM.
	c.EnableKeepAlive = false
	c.LogOutput = io.Discard
	c.ConnectionWriteTimeout = 30 * time.Second
	c.StreamOpenTimeout = 30 * time.Second
	return c
}

type server struct {
	opts     Options
	reaper   *reaper
	services *serviceRegistry
	end      func() // ends the session (park)
}

// errCanceled ends a call whose host side went away: no frame is written.
var errCanceled = errors.New("call canceled by host")

// handle runs one call. It must never panic: a panic here would kill PID 1
// and with it the kernel.
func (s *server) handle(stream net.Conn) {
	defer stream.Close()
	fw := &frameWriter{conn: stream}
	defer func() {
		if r := recover(); r != nil {
			log.Printf("panic in call: %v\n%s", r, debug.Stack())
			fw.fail(wireError(agentproto.ErrCodeInternal, "panic: %v", r))
		}
	}()
	err := s.call(stream, fw)
	if err == nil || errors.Is(err, errCanceled) {
		return
	}
	var werr *agentproto.Error
	if !errors.As(err, &werr) {
		werr = wireError(agentproto.ErrCodeInternal, "%v", err)
	}
	fw.fail(werr)
}

func (s *server) call(stream net.Conn, fw *frameWriter) error {
	kind, payload, err := agentproto.ReadFrame(stream)
	if err != nil {
		return wireError(agentproto.ErrCodeBadRequest, "reading request: %v", err)
	}
	received := time.Now()
	if kind != agentproto.FrameRequest {
		return wireError(agentproto.ErrCodeBadRequest, "first frame has kind %d, want a request", kind)
	}
	var req agentproto.Request
	if err := json.Unmarshal(payload, &req); err != nil {
		return wireError(agentproto.ErrCodeBadRequest, "decoding request: %v", err)
	}
	if req.SentUnixNano != 0 && req.Op != agentproto.OpHello && os.Getpid() == 1 {
		// The hello sets the clock either way itself. A clock that cannot
		// be set must not fail the call: the command runs, the log says why.
		if err := stepClockForward(req.SentUnixNano); err != nil {
			log.Printf("clock: %v", err)
		}
	}
	if mutates(req.Op) {
		root := s.workspaceRoot()
		fw.flush = func() error { return syncfs(root) }
	}
	switch req.Op {
	case agentproto.OpHello:
		return s.helloCall(fw, req.Hello)
	case agentproto.OpExec:
		return s.exec(stream, fw, req.Exec, received)
	case agentproto.OpShutdown:
		return s.shutdown(stream, fw)
	case agentproto.OpSync:
		return s.sync(fw)
	case agentproto.OpPark:
		return s.park(fw)
	case agentproto.OpPutArchive:
		return s.putArchive(stream, fw, req.Archive)
	case agentproto.OpGetArchive:
		return s.getArchive(stream, fw, req.Archive)
	case agentproto.OpShell:
		return s.shell(stream, fw, req.Shell)
	case agentproto.OpServiceStart:
		return s.serviceStart(stream, fw, req.Service)
	case agentproto.OpServiceList:
		return fw.json(agentproto.FrameResult, s.services.list())
	case agentproto.OpServiceStatus:
		return s.serviceStatus(fw, req.Service)
	case agentproto.OpServiceLogs:
		return s.serviceLogs(fw, req.Service)
	case agentproto.OpServiceStop:
		return s.serviceStop(fw, req.Service)
	default:
		return wireError(agentproto.ErrCodeUnknownOp, "unknown op %q", req.Op)
	}
}

func hello() agentproto.Hello {
	h := agentproto.Hello{ProtocolVersion: agentproto.ProtocolVersion, AgentVersion: Version}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.KernelRelease = unix.ByteSliceToString(u.Release[:])
	}
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) == nil {
		h.BootMs = ts.Nano() / int64(time.Millisecond)
	}
	return h
}

// park answers, then ends the session: the port stays open (see channel)
// and the agent waits on it for the next host's Hail. The answer is on the
// port when fw.json returns (yamux writes a frame before the call returns).
func (s *server) park(fw *frameWriter) error {
	if err := fw.json(agentproto.FrameResult, struct{}{}); err != nil {
		return err
	}
	s.end()
	return nil
}

// shutdown replies first: once PowerOff runs, the host gets nothing more.
func (s *server) shutdown(stream net.Conn, fw *frameWriter) error {
	if err := fw.json(agentproto.FrameResult, agentproto.ShutdownResult{}); err != nil {
		return err
	}
	stream.Close()
	if s.opts.PowerOff != nil {
		s.opts.PowerOff()
	}
	return nil
}

func wireError(code, format string, args ...any) *agentproto.Error {
	return &agentproto.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
