package agentclient

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// fakeAgent serves one handler per stream: a deliberately broken or hostile
// guest, to prove the host validates what comes back.
func fakeAgent(t *testing.T, handle func(st net.Conn, req agentproto.Request)) *Client {
	t.Helper()
	hostEnd, guestEnd := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	srv, err := yamux.Server(agentproto.GuestSession(guestEnd), cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			st, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				_, payload, err := agentproto.ReadFrame(st)
				if err != nil {
					return
				}
				var req agentproto.Request
				_ = json.Unmarshal(payload, &req)
				handle(st, req)
			}()
		}
	}()
	c, err := New(hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c
}

func TestHelloRefusesOtherProtocolVersion(t *testing.T) {
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Hello{ProtocolVersion: agentproto.ProtocolVersion + 1})
	})
	_, err := c.Hello(t.Context())
	if errdefs.CodeOf(err) != errdefs.CodeAgentProtocol || !strings.Contains(err.Error(), "pyro env pull --force") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecRefusesOversizedFrame(t *testing.T) {
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		var hdr [5]byte
		hdr[0] = agentproto.FrameStdout
		binary.BigEndian.PutUint32(hdr[1:], agentproto.MaxFramePayload+1)
		st.Write(hdr[:])
	})
	_, err := c.Exec(t.Context(), agentproto.ExecRequest{Argv: []string{"x"}, MaxStdout: 10})
	if errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
		t.Fatalf("err = %v", err)
	}
}

func TestExecEnforcesCapsTheGuestIgnores(t *testing.T) {
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		for i := 0; i < 10; i++ {
			agentproto.WriteFrame(st, agentproto.FrameStdout, []byte(strings.Repeat("x", 1000)))
		}
		// The guest lies: no truncation, fewer bytes than it sent.
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.ExecResult{ExitCode: 0, StdoutBytes: 5})
	})
	r, err := c.Exec(t.Context(), agentproto.ExecRequest{Argv: []string{"x"}, MaxStdout: 2500})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Stdout) != 2500 || !r.StdoutTruncated || r.StdoutBytes < 2500 {
		t.Fatalf("len %d truncated %v bytes %d", len(r.Stdout), r.StdoutTruncated, r.StdoutBytes)
	}
}

func TestExecRejectsGarbage(t *testing.T) {
	cases := map[string]func(net.Conn){
		"unknown frame": func(st net.Conn) { agentproto.WriteFrame(st, 99, nil) },
		"bad json":      func(st net.Conn) { agentproto.WriteFrame(st, agentproto.FrameResult, []byte("{nope")) },
		"bad error":     func(st net.Conn) { agentproto.WriteFrame(st, agentproto.FrameError, []byte("[")) },
	}
	for name, send := range cases {
		c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) { send(st) })
		_, err := c.Exec(t.Context(), agentproto.ExecRequest{Argv: []string{"x"}})
		if errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestExecMapsWireErrors(t *testing.T) {
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		agentproto.WriteJSON(st, agentproto.FrameError, agentproto.Error{Code: agentproto.ErrCodeBadRequest, Message: "argv is empty"})
	})
	_, err := c.Exec(t.Context(), agentproto.ExecRequest{})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "argv is empty") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecCancelClosesStream(t *testing.T) {
	closed := make(chan struct{})
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		io.Copy(io.Discard, st) // returns when the host closes the stream
		close(closed)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Exec(ctx, agentproto.ExecRequest{Argv: []string{"x"}})
	if !errdefs.IsDeadlineExceeded(err) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent never saw the stream close")
	}
}
