package agentclient

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// hostileGuest is a yamux agent whose raw channel the test can also write
// to, as a guest root process that stole the agent's fd can. Calls get
// answered by handle; handle may block forever.
func hostileGuest(t *testing.T, handle func(st net.Conn)) (*Client, net.Conn) {
	t.Helper()
	hostEnd, guestEnd := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	guest := agentproto.GuestSession(guestEnd).(net.Conn)
	srv, err := yamux.Server(guest, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	go func() {
		for {
			st, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				if _, _, err := agentproto.ReadFrame(st); err == nil {
					handle(st)
				}
			}()
		}
	}()
	c, err := New(hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, guest
}

// yamuxHeader builds a raw frame header as the guest would send it.
func yamuxHeader(typ byte, flags uint16, stream, length uint32) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], stream)
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

// execUntilGiveUp runs an exec that the fake agent never answers while the
// attack happens, and checks the host gave the session up for the right
// reason without waiting for any stream library timeout.
func execUntilGiveUp(t *testing.T, c *Client, attack func(), why string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(t.Context(), agentproto.ExecRequest{Argv: []string{"true"}, TimeoutMs: 600_000})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the call's stream is open
	go attack()
	select {
	case err := <-done:
		if errdefs.CodeOf(err) != CodeAgentUnavailable || !strings.Contains(err.Error(), why) {
			t.Fatalf("exec: %v, want %s naming %q", err, CodeAgentUnavailable, why)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("exec still waiting: the host did not give the session up")
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("session still open after a violation")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), why) {
		t.Errorf("Err() = %v, want it naming %q", err, why)
	}
	// The next call fails at once with the same typed error.
	if _, err := c.Exec(t.Context(), agentproto.ExecRequest{Argv: []string{"true"}}); errdefs.CodeOf(err) != CodeAgentUnavailable {
		t.Errorf("next exec: %v", err)
	}
}

// The attack: a fake header for an unknown stream announcing a
// 256 MiB body. yamux alone waits for that body; the guard refuses the
// header before any allocation or wait.
func TestGuardRefusesHugeFrame(t *testing.T) {
	c, raw := hostileGuest(t, func(net.Conn) { select {} })
	execUntilGiveUp(t, c, func() {
		raw.Write(yamuxHeader(yamuxTypeData, 0, 0x7ffffff1, 0x10000000))
	}, "announced 268435456 bytes")
}

// A header within the window whose body never comes: bounded by frameStall.
func TestGuardBoundsStalledFrame(t *testing.T) {
	c, raw := hostileGuest(t, func(net.Conn) { select {} })
	c.guard.stall = 300 * time.Millisecond
	execUntilGiveUp(t, c, func() {
		raw.Write(yamuxHeader(yamuxTypeData, 0, 0x7ffffff1, 1000))
		raw.Write(make([]byte, 10))
	}, "did not arrive in full")
}

// Only the host opens streams; garbage has no valid version.
func TestGuardRefusesGuestStreamsAndGarbage(t *testing.T) {
	c, raw := hostileGuest(t, func(net.Conn) { select {} })
	execUntilGiveUp(t, c, func() { raw.Write(yamuxHeader(1, yamuxFlagSYN, 2, 0)) }, "tried to open a stream")

	c, raw = hostileGuest(t, func(net.Conn) { select {} })
	execUntilGiveUp(t, c, func() { raw.Write([]byte("\x07garbage from a guest process")) }, "frame version 7")

	c, raw = hostileGuest(t, func(net.Conn) { select {} })
	execUntilGiveUp(t, c, func() { raw.Write(yamuxHeader(yamuxTypeGoAway, 0, 0, 0)) }, "go-away")
}

// An agent that does not answer an exec within its timeout plus the grace:
// the host gives the session up on its own clock.
func TestExecBoundedOnHost(t *testing.T) {
	c, _ := hostileGuest(t, func(net.Conn) { select {} })
	c.grace = 200 * time.Millisecond
	start := time.Now()
	_, err := c.Exec(t.Context(), agentproto.ExecRequest{Argv: []string{"sleep", "1"}, TimeoutMs: 100})
	if errdefs.CodeOf(err) != CodeAgentUnavailable || !strings.Contains(err.Error(), "did not answer exec") {
		t.Fatalf("exec: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("exec returned after %s", d)
	}
	if c.Err() == nil {
		t.Error("the session was not given up")
	}
}

// Legitimate traffic passes the guard: a large output in many data frames.
func TestGuardPassesRealTraffic(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	c, _ := hostileGuest(t, func(st net.Conn) {
		for i := 0; i < len(big); i += 64 << 10 {
			agentproto.WriteFrame(st, agentproto.FrameStdout, []byte(big[i:i+64<<10]))
		}
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.ExecResult{})
	})
	res, err := c.Exec(t.Context(), agentproto.ExecRequest{Argv: []string{"x"}, MaxStdout: 4 << 20})
	if err != nil || len(res.Stdout) != len(big) {
		t.Fatalf("%v, %d bytes", err, len(res.Stdout))
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// A slow flush announced by the agent extends an exec's bound, once.
// Margins are seconds wide: only the extension decides the outcome.
func TestFlushingExtendsBoundOnce(t *testing.T) {
	answer := func(flushes int, gap, last time.Duration) func(net.Conn) {
		return func(st net.Conn) {
			for range flushes {
				time.Sleep(gap)
				agentproto.WriteFrame(st, agentproto.FrameFlushing, nil)
			}
			time.Sleep(last)
			agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.ExecResult{})
		}
	}
	req := agentproto.ExecRequest{Argv: []string{"true"}, TimeoutMs: 100}
	// Bound 1.1 s, extended at 0.2 s to 3.2 s; the result comes at 2.2 s.
	c, _ := hostileGuest(t, answer(1, 200*time.Millisecond, 2*time.Second))
	c.grace, c.flush = time.Second, 3*time.Second
	if _, err := c.Exec(t.Context(), req); err != nil {
		t.Fatalf("exec with a slow flush: %v", err)
	}
	// Flushes announced every second: one extension ends the call at 4 s,
	// before the result at 7 s; extensions without limit would reach it.
	c, _ = hostileGuest(t, answer(5, time.Second, 2*time.Second))
	c.grace, c.flush = time.Second, 3*time.Second
	if _, err := c.Exec(t.Context(), req); errdefs.CodeOf(err) != CodeAgentUnavailable {
		t.Fatalf("exec extended more than once: %v", err)
	}
}
