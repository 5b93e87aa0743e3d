//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

func TestMain(m *testing.M) {
	// Like PID 1 in the guest, inherit orphans (the background children of
	// killed shells) so the reaper reaps them instead of host init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// startAgent serves a fresh session over a pipe and returns the host side.
func startAgent(t *testing.T, opts Options) *yamux.Session {
	t.Helper()
	guest, host := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, guest, opts) }()
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(agentproto.HostSession(host), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sess.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return sess
}

// reply is everything the agent sent on one stream.
type reply struct {
	started *agentproto.Started
	stdout  []byte
	stderr  []byte
	result  json.RawMessage
	err     *agentproto.Error
}

func send(t *testing.T, sess *yamux.Session, req agentproto.Request) net.Conn {
	t.Helper()
	stream, err := trySend(sess, req)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func trySend(sess *yamux.Session, req agentproto.Request) (net.Conn, error) {
	stream, err := sess.Open()
	if err != nil {
		return nil, err
	}
	if err := agentproto.WriteJSON(stream, agentproto.FrameRequest, req); err != nil {
		stream.Close()
		return nil, err
	}
	return stream, nil
}

// readReply reads frames until the final one.
func readReply(t *testing.T, stream net.Conn) reply {
	t.Helper()
	r, err := tryReadReply(stream)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tryReadReply(stream net.Conn) (reply, error) {
	var r reply
	for {
		kind, payload, err := agentproto.ReadFrame(stream)
		if err != nil {
			return r, fmt.Errorf("reading frame: %w", err)
		}
		switch kind {
		case agentproto.FrameStarted:
			r.started = new(agentproto.Started)
			err = json.Unmarshal(payload, r.started)
		case agentproto.FrameStdout:
			r.stdout = append(r.stdout, payload...)
		case agentproto.FrameStderr:
			r.stderr = append(r.stderr, payload...)
		case agentproto.FrameFlushing: // a slow flush on a loaded host
		case agentproto.FrameResult:
			r.result = payload
			return r, nil
		case agentproto.FrameError:
			r.err = new(agentproto.Error)
			return r, json.Unmarshal(payload, r.err)
		default:
			err = fmt.Errorf("unexpected frame kind %d", kind)
		}
		if err != nil {
			return r, err
		}
	}
}

func call(t *testing.T, sess *yamux.Session, req agentproto.Request) reply {
	t.Helper()
	r, err := tryCall(sess, req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryCall is call for goroutines other than the test's.
func tryCall(sess *yamux.Session, req agentproto.Request) (reply, error) {
	stream, err := trySend(sess, req)
	if err != nil {
		return reply{}, err
	}
	defer stream.Close()
	return tryReadReply(stream)
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

func wantError(t *testing.T, r reply, code string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("got result %s, want error %s", r.result, code)
	}
	if r.err.Code != code {
		t.Fatalf("got error %v, want code %s", r.err, code)
	}
}

func TestHello(t *testing.T) {
	sess := startAgent(t, Options{})
	r := call(t, sess, agentproto.Request{Op: agentproto.OpHello})
	if r.err != nil {
		t.Fatal(r.err)
	}
	var h agentproto.Hello
	mustUnmarshal(t, r.result, &h)
	if h.ProtocolVersion != agentproto.ProtocolVersion || h.AgentVersion != Version {
		t.Errorf("versions = %d %q", h.ProtocolVersion, h.AgentVersion)
	}
	if h.KernelRelease == "" || h.BootMs <= 0 {
		t.Errorf("kernel %q, boot %d ms", h.KernelRelease, h.BootMs)
	}
}

func TestUnknownOp(t *testing.T) {
	sess := startAgent(t, Options{})
	wantError(t, call(t, sess, agentproto.Request{Op: "reboot-the-moon"}), agentproto.ErrCodeUnknownOp)
}

func TestFirstFrameMustBeRequest(t *testing.T) {
	sess := startAgent(t, Options{})
	stream, err := sess.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if err := agentproto.WriteFrame(stream, agentproto.FrameStdout, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	wantError(t, readReply(t, stream), agentproto.ErrCodeBadRequest)
}

func TestShutdownRepliesThenPowersOff(t *testing.T) {
	powered := make(chan struct{})
	sess := startAgent(t, Options{PowerOff: func() { close(powered) }})
	r := call(t, sess, agentproto.Request{Op: agentproto.OpShutdown})
	if r.err != nil {
		t.Fatal(r.err)
	}
	select {
	case <-powered:
	case <-time.After(2 * time.Second):
		t.Fatal("PowerOff not called")
	}
}

func TestSessionEndsWhenHostDisconnects(t *testing.T) {
	guest, host := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), guest, Options{}) }()
	host.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve returned nil")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve still running after host EOF")
	}
}

func TestFindPort(t *testing.T) {
	dir := t.TempDir()
	for dev, name := range map[string]string{"vport0p1": "org.qemu.other\n", "vport1p1": agentproto.PortName + "\n", "vport1p2": ""} {
		if err := os.MkdirAll(dir+"/"+dev, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/"+dev+"/name", []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := findPort(dir, agentproto.PortName)
	if err != nil || dev != "vport1p1" {
		t.Fatalf("findPort = %q, %v", dev, err)
	}
	if _, err := findPort(dir, "org.pyro.missing"); err == nil {
		t.Fatal("found a missing port")
	}
	if _, err := findPort(dir+"/nope", agentproto.PortName); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing class dir: %v", err)
	}
}

// A guest restored in the middle of a session (a fork) meets its new host's
// Hail there: the old session ends with yamux's version error, which tells
// serveOnce to reopen the port at once (agentproto's tests cover the fresh
// session after it).
func TestSessionBrokenByHail(t *testing.T) {
	guest, host := net.Pipe()
	defer host.Close()
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), guest, Options{}) }()
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = io.Discard
	old, err := yamux.Client(agentproto.HostSession(host), cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := send(t, old, agentproto.Request{Op: agentproto.OpHello})
	st.Close()
	if _, err := host.Write(agentproto.Hail); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		// Usually yamux's version error (the agent then reopens at once);
		// under load yamux sometimes reports its shutdown instead (seen once
		// in CI), which costs only the 20 ms reopen delay. Never the host's
		// EOF: the host is still there.
		if !errors.Is(err, yamux.ErrInvalidVersion) && !errors.Is(err, yamux.ErrSessionShutdown) {
			t.Fatalf("the old session ended with %v, want yamux's version error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the old session survived its host's Hail")
	}
}
