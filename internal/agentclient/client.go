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
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// Client talks to one guest agent.
type Client struct {
	session *yamux.Session
}

// New starts a yamux client session on conn. It does not wait for the agent;
// call Hello for that.
func New(conn net.Conn) (*Client, error) {
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false // TCG guests can stall for seconds; liveness is the VMM's job
	cfg.LogOutput = io.Discard
	cfg.ConnectionWriteTimeout = 30 * time.Second
	cfg.StreamOpenTimeout = 0 // opening must not fail while the guest is still booting
	s, err := yamux.Client(conn, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{session: s}, nil
}

// Close ends the session.
func (c *Client) Close() error { return c.session.Close() }

// Done is closed when the session dies (guest gone, channel closed).
func (c *Client) Done() <-chan struct{} { return c.session.CloseChan() }

// call opens a stream, sends req and arranges for the stream to be closed when
// ctx ends, which the agent takes as cancellation of the call.
func (c *Client) call(ctx context.Context, req agentproto.Request) (*yamux.Stream, func(), error) {
	st, err := c.session.OpenStream()
	if err != nil {
		return nil, nil, unavailable(err)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	if err := agentproto.WriteJSON(st, agentproto.FrameRequest, req); err != nil {
		stop()
		st.Close()
		return nil, nil, unavailable(err)
	}
	return st, func() { stop(); st.Close() }, nil
}

// Hello waits for the agent to answer and checks that it speaks our protocol.
func (c *Client) Hello(ctx context.Context) (*agentproto.Hello, error) {
	return c.HelloWith(ctx, nil)
}

// HelloWith is Hello carrying req: the host's clock and fresh entropy, which
// the agent applies before it answers (a guest restored from a snapshot
// wakes with the snapshot's clock and random state).
func (c *Client) HelloWith(ctx context.Context, req *agentproto.HelloRequest) (*agentproto.Hello, error) {
	st, done, err := c.call(ctx, agentproto.Request{Op: agentproto.OpHello, Hello: req})
	if err != nil {
		return nil, err
	}
	defer done()
	var h agentproto.Hello
	if err := readResult(ctx, st, &h); err != nil {
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
	st, done, err := c.call(ctx, agentproto.Request{Op: agentproto.OpShutdown})
	if err != nil {
		return err
	}
	defer done()
	return readResult(ctx, st, &agentproto.ShutdownResult{})
}

// ExecResult is a finished guest command with its (bounded) output.
type ExecResult struct {
	agentproto.ExecResult
	Stdout []byte
	Stderr []byte
}

// Exec runs a command in the guest. Output beyond req.MaxStdout/MaxStderr is
// dropped by the agent; the host enforces the same caps in case it does not.
func (c *Client) Exec(ctx context.Context, req agentproto.ExecRequest) (*ExecResult, error) {
	st, done, err := c.call(ctx, agentproto.Request{Op: agentproto.OpExec, Exec: &req})
	if err != nil {
		return nil, err
	}
	defer done()
	out := &ExecResult{}
	stdout := capped{max: req.MaxStdout}
	stderr := capped{max: req.MaxStderr}
	for {
		kind, payload, err := agentproto.ReadFrame(st)
		if err != nil {
			return nil, streamErr(ctx, err)
		}
		switch kind {
		case agentproto.FrameStarted:
		case agentproto.FrameStdout:
			stdout.write(payload)
		case agentproto.FrameStderr:
			stderr.write(payload)
		case agentproto.FrameResult:
			if err := json.Unmarshal(payload, &out.ExecResult); err != nil {
				return nil, protocolErr("bad exec result: %v", err)
			}
			out.Stdout, out.Stderr = stdout.buf, stderr.buf
			out.StdoutTruncated = out.StdoutTruncated || stdout.over
			out.StderrTruncated = out.StderrTruncated || stderr.over
			if out.StdoutBytes < int64(len(out.Stdout)) {
				out.StdoutBytes = int64(len(out.Stdout))
			}
			if out.StderrBytes < int64(len(out.Stderr)) {
				out.StderrBytes = int64(len(out.Stderr))
			}
			return out, nil
		case agentproto.FrameError:
			return nil, wireErr(payload)
		default:
			return nil, protocolErr("unexpected frame kind %d", kind)
		}
	}
}

// capped keeps at most max bytes and remembers whether more arrived.
type capped struct {
	buf  []byte
	max  int64
	over bool
}

func (c *capped) write(p []byte) {
	room := c.max - int64(len(c.buf))
	if room <= 0 {
		c.over = c.over || len(p) > 0
		return
	}
	if int64(len(p)) > room {
		p = p[:room]
		c.over = true
	}
	c.buf = append(c.buf, p...)
}

func readResult(ctx context.Context, st io.Reader, v any) error {
	kind, payload, err := agentproto.ReadFrame(st)
	if err != nil {
		return streamErr(ctx, err)
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
		return errdefs.New(errdefs.ErrFailedPrecondition, "exec_failed", "%s", msg)
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
	}
	return errdefs.New(errdefs.ErrInternal, errdefs.CodeInternal, "guest agent: %s", msg)
}

func streamErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, agentproto.ErrFrameTooLarge) {
		return protocolErr("%v", err)
	}
	return unavailable(err)
}

func unavailable(err error) error {
	return errdefs.Wrap(err, errdefs.ErrUnavailable, "agent_unavailable", "guest agent connection lost")
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
