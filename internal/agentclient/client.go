// Package agentclient is the host side of the guest agent protocol: a yamux
// session over the VM's agent channel, one stream per call. Everything the
// guest sends back is treated as untrusted and validated here.
package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// Grace is how long past a call's own bound (an exec's timeout) the host
// waits for the agent's answer before it gives the session up. It is the
// one grace of every exec path: one-shot runs, workspace commands, builds.
const Grace = 30 * time.Second

// ErrNoAnswer is in the error of a call the agent did not answer within its
// bound (the session is then given up): a one-shot run reports it as its
// command's timeout.
var ErrNoAnswer = errors.New("the guest agent did not answer")

// quickBound bounds calls that should answer at once: sync, shutdown, and
// service status, list, logs and stop (stop on top of its grace). Hello is
// bounded by its caller (the boot timeout); archives and shells, whose size
// or life is the caller's, only by the frame guard and the caller.
const quickBound = 60 * time.Second

// Client talks to one guest agent.
type Client struct {
	session *yamux.Session
	guard   *guardConn
	grace   time.Duration // Grace; shorter in tests
	flush   time.Duration // agentproto.FlushBound; shorter in tests

	mu     sync.Mutex
	broken error // why the host gave the session up, if it did
}

// New starts a yamux client session on conn. It does not wait for the agent;
// call Hello for that.
func New(conn net.Conn) (*Client, error) {
	guard := newGuardConn(agentproto.HostSession(conn))
	conn = guard
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false // TCG guests can stall for seconds; liveness is the VMM's job
	cfg.LogOutput = io.Discard
	cfg.ConnectionWriteTimeout = 30 * time.Second
	cfg.StreamOpenTimeout = 0                  // opening must not fail while the guest is still booting
	cfg.MaxStreamWindowSize = yamuxMaxDataBody // what guardConn lets through
	s, err := yamux.Client(conn, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{session: s, guard: guard, grace: Grace, flush: agentproto.FlushBound}, nil
}

// Close ends the session.
func (c *Client) Close() error { return c.session.Close() }

// Done is closed when the session dies (guest gone, channel closed, or a
// bound or the protocol broken: see Err).
func (c *Client) Done() <-chan struct{} { return c.session.CloseChan() }

// Err says why the host gave the session up: the guest broke the protocol
// or a call overran its bound. It is nil while the session is usable, and
// after an ordinary end (guest powered off, Close).
func (c *Client) Err() error {
	if err := c.guard.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// giveUp ends the session for good: an agent that does not answer within a
// call's bound cannot be trusted with the next call either.
func (c *Client) giveUp(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	c.mu.Unlock()
	_ = c.session.Close()
}

// call opens a stream and sends req. The stream ends when ctx ends (the agent
// takes that as cancellation) or, with bound > 0, when the host-side bound
// passes; then the whole session is given up. Ending a stream sets deadlines
// on it as well as closing it: a yamux Read does not return on a local close
// until the peer answers, which a stalled or hostile guest never does.
func (c *Client) call(ctx context.Context, req agentproto.Request, bound time.Duration) (*call, error) {
	if err := c.Err(); err != nil {
		return nil, unavailable(err)
	}
	st, err := c.session.OpenStream()
	if err != nil {
		return nil, unavailable(c.cause(err))
	}
	cl := &call{Stream: st, ctx: ctx, client: c}
	if bound > 0 {
		cl.timer = time.AfterFunc(bound, func() {
			cl.overrun.Store(true)
			c.giveUp(fmt.Errorf("%w %s within its bound (%s, plus %s once flushing)",
				ErrNoAnswer, req.Op, bound, c.flush))
			cl.end()
		})
	}
	stop := context.AfterFunc(ctx, cl.end)
	cl.done = func() {
		stop()
		if cl.timer != nil {
			cl.timer.Stop()
		}
		st.Close()
	}
	// Stamped as late as possible: the agent sets a guest clock that is
	// behind this forward before it starts the call.
	req.SentUnixNano = time.Now().UnixNano()
	if err := agentproto.WriteJSON(st, agentproto.FrameRequest, req); err != nil {
		cl.done()
		return nil, cl.err(err)
	}
	return cl, nil
}

// cause prefers the reason the session was given up over yamux's own error.
func (c *Client) cause(err error) error {
	if why := c.Err(); why != nil {
		return why
	}
	return err
}

// call is one stream and what ends it.
type call struct {
	*yamux.Stream
	ctx      context.Context
	done     func()
	timer    *time.Timer // the host-side bound; nil when unbounded
	extended bool        // the bound was extended for a flush (once only)
	overrun  atomic.Bool
	client   *Client
}

// flushing extends the bound once by agentproto.FlushBound: the agent said
// its work is done and it is flushing the workspace to disk. Only the
// call's one reader calls it.
func (cl *call) flushing() {
	if cl.timer == nil || cl.extended {
		return
	}
	cl.extended = true
	if cl.timer.Stop() { // false: the bound already passed
		cl.timer.Reset(cl.client.flush)
	}
}

func (cl *call) end() {
	now := time.Now()
	_ = cl.SetReadDeadline(now)
	_ = cl.SetWriteDeadline(now)
	_ = cl.Close()
}

// err turns an error reading or writing the stream into what the caller
// sees: its own context's error, agent_unavailable naming why the session
// was given up, or a protocol error.
func (cl *call) err(err error) error {
	if cl.ctx.Err() != nil && !cl.overrun.Load() {
		return cl.ctx.Err()
	}
	if errors.Is(err, agentproto.ErrFrameTooLarge) {
		return protocolErr("%v", err)
	}
	return unavailable(cl.client.cause(err))
}

// Hello waits for the agent to answer and checks that it speaks our protocol.
func (c *Client) Hello(ctx context.Context) (*agentproto.Hello, error) {
	return c.HelloWith(ctx, nil)
}

// HelloWith is Hello carrying req: the host's clock and fresh entropy, which
// the agent applies before it answers (a guest restored from a snapshot
// wakes with the snapshot's clock and random state).
func (c *Client) HelloWith(ctx context.Context, req *agentproto.HelloRequest) (*agentproto.Hello, error) {
	st, err := c.call(ctx, agentproto.Request{Op: agentproto.OpHello, Hello: req}, 0)
	if err != nil {
		return nil, err
	}
	defer st.done()
	var h agentproto.Hello
	if err := readResult(st, &h); err != nil {
		return nil, err
	}
	if h.ProtocolVersion != agentproto.ProtocolVersion {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeAgentProtocol,
			"guest agent speaks protocol %d, this pyro speaks %d: rebuild the environment with \"pyro env pull --force ENV\"",
			h.ProtocolVersion, agentproto.ProtocolVersion)
	}
	return &h, nil
}

// Shutdown asks the agent to flush and power the guest off.
func (c *Client) Shutdown(ctx context.Context) error {
	st, err := c.call(ctx, agentproto.Request{Op: agentproto.OpShutdown}, quickBound)
	if err != nil {
		return err
	}
	defer st.done()
	return readResult(st, &agentproto.ShutdownResult{})
}

// ExecResult is a finished guest command with its (bounded) output: the
// one result of every exec path, passed on by the supervisor as it is
// (redacted) and mapped to the public results by package pyro.
type ExecResult struct {
	agentproto.ExecResult
	Stdout []byte `json:"stdout"`
	Stderr []byte `json:"stderr"`
}

// Exec runs a command in the guest. Output beyond req.MaxStdout/MaxStderr is
// dropped by the agent; the host enforces the same caps in case it does not.
// A command with a timeout must be answered within it plus Grace, or the
// session is given up (agent_unavailable).
func (c *Client) Exec(ctx context.Context, req agentproto.ExecRequest) (*ExecResult, error) {
	return c.ExecIO(ctx, req, ExecStreams{})
}

// ExecStreams connects a command to the caller while it runs.
type ExecStreams struct {
	// Stdout and Stderr, when either is set, get every byte of that output
	// as it arrives: the agent then forwards all output (NoOutputCap) and
	// the host caps the result itself (head and tail, as the agent does).
	Stdout, Stderr io.Writer
	// Stdin, when set, is copied to the command's stdin until EOF, which
	// closes it (req.Stdin is then unused).
	Stdin io.Reader
}

// ExecIO is Exec with the command's output streamed to s as it comes and
// its stdin taken from s.Stdin.
func (c *Client) ExecIO(ctx context.Context, req agentproto.ExecRequest, s ExecStreams) (*ExecResult, error) {
	var bound time.Duration
	if req.TimeoutMs > 0 {
		bound = time.Duration(req.TimeoutMs)*time.Millisecond + c.grace
	}
	stdout, stderr := newHeadTail(req.MaxStdout), newHeadTail(req.MaxStderr)
	wire := req
	if s.Stdout != nil || s.Stderr != nil {
		wire.MaxStdout, wire.MaxStderr = agentproto.NoOutputCap, agentproto.NoOutputCap
	}
	if s.Stdin != nil {
		wire.Stdin, wire.StdinStream = nil, true
	}
	st, err := c.call(ctx, agentproto.Request{Op: agentproto.OpExec, Exec: &wire}, bound)
	if err != nil {
		return nil, err
	}
	defer st.done()
	if s.Stdin != nil {
		go sendStdin(st, s.Stdin)
	}
	out := &ExecResult{}
	for {
		kind, payload, err := agentproto.ReadFrame(st)
		if err != nil {
			return nil, st.err(err)
		}
		switch kind {
		case agentproto.FrameStarted:
		case agentproto.FrameFlushing:
			st.flushing()
		case agentproto.FrameStdout:
			stdout.write(payload)
			tee(s.Stdout, payload)
		case agentproto.FrameStderr:
			stderr.write(payload)
			tee(s.Stderr, payload)
		case agentproto.FrameResult:
			if err := json.Unmarshal(payload, &out.ExecResult); err != nil {
				return nil, protocolErr("bad exec result: %v", err)
			}
			out.Stdout, out.Stderr = stdout.bytes(), stderr.bytes()
			out.StdoutTruncated = out.StdoutTruncated || stdout.truncated()
			out.StderrTruncated = out.StderrTruncated || stderr.truncated()
			// The guest's counts are only trusted upwards.
			out.StdoutBytes = max(out.StdoutBytes, stdout.total)
			out.StderrBytes = max(out.StderrBytes, stderr.total)
			return out, nil
		case agentproto.FrameError:
			return nil, wireErr(payload)
		default:
			return nil, protocolErr("unexpected frame kind %d", kind)
		}
	}
}

// tee passes output on to the caller's writer; a writer that fails (a
// closed terminal) does not stop the command: the result still comes.
func tee(w io.Writer, p []byte) {
	if w != nil {
		_, _ = w.Write(p)
	}
}

// sendStdin copies r to the command's stdin as FrameData frames, then
// FrameDataEnd. It ends early when the stream does (the call finished).
func sendStdin(st *call, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if agentproto.WriteFrame(st, agentproto.FrameData, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = agentproto.WriteFrame(st, agentproto.FrameDataEnd, nil)
			return
		}
	}
}

func readResult(st *call, v any) error {
	kind, payload, err := agentproto.ReadFrame(st)
	if err != nil {
		return st.err(err)
	}
	if kind == agentproto.FrameFlushing {
		st.flushing()
		if kind, payload, err = agentproto.ReadFrame(st); err != nil {
			return st.err(err)
		}
	}
	switch kind {
	case agentproto.FrameResult:
		if err := json.Unmarshal(payload, v); err != nil {
			return protocolErr("bad result: %v", err)
		}
		return nil
	case agentproto.FrameError:
		return wireErr(payload)
	}
	return protocolErr("unexpected frame kind %d", kind)
}

// wireErr converts an agent error frame into a typed host error.
func wireErr(payload []byte) error {
	var e agentproto.Error
	if err := json.Unmarshal(payload, &e); err != nil {
		return protocolErr("bad error frame: %v", err)
	}
	msg := truncate(e.Message, 2000)
	switch e.Code {
	case agentproto.ErrCodeBadRequest:
		return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "%s", msg)
	case agentproto.ErrCodeExecFailed:
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeExecFailed, "%s", msg)
	case agentproto.ErrCodeUnknownOp, agentproto.ErrCodeUnsupported:
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeAgentProtocol, "guest agent: %s", msg)
	case agentproto.ErrCodeOutside:
		return errdefs.New(errdefs.ErrInvalidArgument, CodePathOutsideWorkspace,
			"%s: paths must be relative to %s or absolute under it, and must not lead out of it through a symlink",
			msg, agentproto.WorkspaceRoot)
	case agentproto.ErrCodeNotFound:
		return errdefs.New(errdefs.ErrNotFound, CodeNotFound, "%s in the guest: check the path (relative to %s or absolute under it)",
			msg, agentproto.WorkspaceRoot)
	case agentproto.ErrCodeTooLarge:
		return errdefs.New(errdefs.ErrInvalidArgument, CodeTooLarge, "%s: transfer a smaller tree or raise the limit", msg)
	case agentproto.ErrCodeBadArchive:
		return errdefs.New(errdefs.ErrInvalidArgument, CodeBadArchive, "%s", msg)
	case agentproto.ErrCodeExists:
		return errdefs.New(errdefs.ErrAlreadyExists, CodeServiceExists, "%s", msg)
	case agentproto.ErrCodePortInUse:
		return errdefs.New(errdefs.ErrFailedPrecondition, CodePortInUse, "%s", msg)
	case agentproto.ErrCodeNoSpace:
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeNoSpace,
			"%s: free space in the workspace (exec 'du -sh /workspace/* /tmp' shows what takes it) and retry", msg)
	}
	return errdefs.New(errdefs.ErrInternal, errdefs.CodeInternal, "guest agent: %s", msg)
}

// streamErr is call.err for streams not made by call (shells).
func (c *Client) streamErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, agentproto.ErrFrameTooLarge) {
		return protocolErr("%v", err)
	}
	return unavailable(c.cause(err))
}

// CodeAgentUnavailable: the agent session is gone (guest powered off or
// crashed, or given up by the host after a broken bound or protocol).
const CodeAgentUnavailable = errdefs.CodeAgentUnavailable

func unavailable(err error) error {
	e := errdefs.Wrap(err, errdefs.ErrUnavailable, CodeAgentUnavailable, "guest agent connection lost")
	return e.WithNext(" (a workspace's VM is stopped then: %s to boot it again from its disk)", "pyro workspace start ID", "workspace_start")
}

func protocolErr(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInternal, errdefs.CodeAgentProtocol, "guest agent sent an invalid reply: %s", fmt.Sprintf(format, args...))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
