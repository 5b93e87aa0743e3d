//go:build linux

package agent

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// portPair is a stand-in for the agent's virtio port: the guest's end is a
// pollable *os.File (as the port is), the host's a net.Conn.
func portPair(t *testing.T) (*os.File, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	guest := os.NewFile(uintptr(fds[0]), "guest")
	hf := os.NewFile(uintptr(fds[1]), "host")
	host, err := net.FileConn(hf)
	hf.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	return guest, host
}

// hostEnd is one host session on a connection that outlives it: closing
// the session unblocks its reader but leaves the connection open, as a
// host that is about to be replaced by a restore leaves its end.
type hostEnd struct{ net.Conn }

func (h hostEnd) Close() error { return h.SetDeadline(time.Now()) }

func hostSession(t *testing.T, conn net.Conn) *yamux.Session {
	t.Helper()
	if err := conn.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(agentproto.HostSession(hostEnd{conn}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func helloOK(t *testing.T, sess *yamux.Session) {
	t.Helper()
	st := send(t, sess, agentproto.Request{Op: agentproto.OpHello})
	defer st.Close()
	if r := readReply(t, st); r.err != nil {
		t.Fatalf("hello: %v", r.err)
	}
}

// A park ends the session but not the port: the next host's handshake is
// answered on the same open port, and so is one after a Hail broke a
// session (a fork restored mid-session). Only the host's leaving ends the
// channel.
func TestParkKeepsPort(t *testing.T) {
	guest, host := portPair(t)
	ch := newChannel(guest)
	defer ch.release()
	served := make(chan struct{})
	opts := Options{WorkspaceRoot: t.TempDir(), ServicesRoot: t.TempDir()}
	go func() {
		serveChannel(ch, opts)
		close(served)
	}()

	first := hostSession(t, host)
	helloOK(t, first)
	st := send(t, first, agentproto.Request{Op: agentproto.OpPark})
	if r := readReply(t, st); r.err != nil {
		t.Fatalf("park: %v", r.err)
	}
	st.Close()
	first.Close()

	second := hostSession(t, host)
	helloOK(t, second) // a fresh handshake on the parked port
	// A Hail in the middle of a session ends it; the next one starts at once.
	if _, err := host.Write(agentproto.Hail); err != nil {
		t.Fatal(err)
	}
	second.Close()
	third := hostSession(t, host)
	helloOK(t, third)
	third.Close()

	select {
	case <-served:
		t.Fatal("the agent let go of its port while a host was attached")
	default:
	}
	if ch.failed() {
		t.Fatalf("the channel failed: %v", ch.broken)
	}
	host.Close() // the host leaves: the port reads EOF
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent kept serving a port whose host left")
	}
	if !ch.failed() {
		t.Fatal("a host that left should make the agent reopen its port")
	}
}

// A port that takes no deadlines is closed for real at a session's end and
// reopened, as before channels.
func TestChannelWithoutDeadlines(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fd, err := unix.Dup(int(r.Fd())) // a blocking descriptor: no poller, no deadlines
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "blocking")
	ch := newChannel(f)
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if ch.next() {
		t.Fatal("a channel without deadlines was reused")
	}
	ch.release()
}
