package agentclient

import (
	"context"
	"encoding/json"
	"io"
	"sync"

	"github.com/hashicorp/yamux"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// inputChunk bounds one input frame; larger writes are split.
const inputChunk = 32 << 10

// Shell is one program running on a guest PTY. Its stream stays open for the
// program's life: Read yields the PTY's output, Write feeds its input. It
// outlives the context that opened it; Close hangs it up.
type Shell struct {
	st      *yamux.Stream
	c       *Client
	pid     int
	wmu     sync.Mutex // one writer of frames at a time
	pending []byte     // rest of the current output frame
	exit    agentproto.ShellExit
}

// OpenShell starts req on a new PTY in the guest. ctx bounds the start only.
func (c *Client) OpenShell(ctx context.Context, req agentproto.ShellRequest) (*Shell, error) {
	st, err := c.session.OpenStream()
	if err != nil {
		return nil, unavailable(err)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	if err := agentproto.WriteJSON(st, agentproto.FrameRequest, agentproto.Request{Op: agentproto.OpShell, Shell: &req}); err != nil {
		st.Close()
		return nil, unavailable(err)
	}
	kind, payload, err := agentproto.ReadFrame(st)
	if err != nil {
		st.Close()
		return nil, c.streamErr(ctx, err)
	}
	switch kind {
	case agentproto.FrameStarted:
		var s agentproto.Started
		if err := json.Unmarshal(payload, &s); err != nil || s.Pid <= 0 {
			st.Close()
			return nil, protocolErr("bad shell start frame")
		}
		if !stop() { // ctx ended while we read: the stream is closed
			return nil, ctx.Err()
		}
		return &Shell{st: st, pid: s.Pid, c: c}, nil
	case agentproto.FrameError:
		st.Close()
		return nil, wireErr(payload)
	}
	st.Close()
	return nil, protocolErr("unexpected frame kind %d opening a shell", kind)
}

// Pid is the shell program's pid in the guest.
func (s *Shell) Pid() int { return s.pid }

// Read returns PTY output; io.EOF once the program exited (see Exit).
func (s *Shell) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		kind, payload, err := agentproto.ReadFrame(s.st)
		if err != nil {
			return 0, s.c.streamErr(context.Background(), err)
		}
		switch kind {
		case agentproto.FrameFlushing: // the shell ended; its result follows
		case agentproto.FrameStdout:
			s.pending = payload
		case agentproto.FrameResult:
			var e agentproto.ShellExit
			if err := json.Unmarshal(payload, &e); err != nil || !validExit(e) {
				return 0, protocolErr("bad shell exit")
			}
			s.exit = e
			return 0, io.EOF
		case agentproto.FrameError:
			return 0, wireErr(payload)
		default:
			return 0, protocolErr("unexpected frame kind %d on a shell", kind)
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func validExit(e agentproto.ShellExit) bool {
	if e.ExitCode < -1 || e.ExitCode > 255 || len(e.Signal) > 16 {
		return false
	}
	for _, r := range e.Signal {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Exit is how the program ended; valid once Read returned io.EOF.
func (s *Shell) Exit() (code int, signal string) { return s.exit.ExitCode, s.exit.Signal }

// Write sends input to the PTY.
func (s *Shell) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		n := min(len(p), inputChunk)
		if err := agentproto.WriteFrame(s.st, agentproto.FrameData, p[:n]); err != nil {
			return written, unavailable(err)
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// Resize changes the PTY's size; the program gets SIGWINCH.
func (s *Shell) Resize(cols, rows int) error {
	return s.control(agentproto.ShellControl{Cols: cols, Rows: rows})
}

// Signal sends a signal (INT, TERM, HUP, KILL...) to the PTY's foreground job.
func (s *Shell) Signal(name string) error {
	return s.control(agentproto.ShellControl{Signal: name})
}

func (s *Shell) control(c agentproto.ShellControl) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := agentproto.WriteJSON(s.st, agentproto.FrameControl, c); err != nil {
		return unavailable(err)
	}
	return nil
}

// Close hangs the shell up: the agent kills its session.
func (s *Shell) Close() error { return s.st.Close() }
