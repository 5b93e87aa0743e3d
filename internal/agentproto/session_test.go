package agentproto

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// echoAfterHandshake is a guest: it accepts the session on c and echoes one
// line back.
func echoAfterHandshake(t *testing.T, c net.Conn) {
	t.Helper()
	r, err := AcceptSession(context.Background(), c)
	if err != nil {
		t.Error(err)
		return
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Error(err)
		return
	}
	c.Write(b)
}

func TestSessionHandshake(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	go echoAfterHandshake(t, guest)
	s := HostSession(host)
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
}

// A guest that first runs an old session (a restored fork): it reads what
// it takes for a frame body, sends stale bytes and drops what it had read,
// then meets a later Hail in a fresh session. The host's first bytes after
// the handshake still arrive whole.
func TestSessionAfterOldSession(t *testing.T) {
	hostEnd, guestEnd := net.Pipe()
	defer hostEnd.Close()
	go func() {
		old := make([]byte, 100) // an old session reads the first Hails as a body
		if _, err := io.ReadFull(guestEnd, old); err != nil {
			t.Error(err)
			return
		}
		if !bytes.Contains(old, Hail) {
			t.Errorf("the old session read %q", old)
		}
		guestEnd.Write([]byte("\x00\x00stale yamux frame of the old session"))
		echoAfterHandshake(t, guestEnd)
	}()
	s := HostSession(hostEnd)
	if _, err := s.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "fresh" {
		t.Fatalf("read %q, %v", b, err)
	}
}

// A marker split over reads is still found.
func TestSkipPastSplit(t *testing.T) {
	r := io.MultiReader(bytes.NewReader([]byte("junk"+string(Ack[:7]))), bytes.NewReader(append(bytes.Clone(Ack[7:]), "rest"...)))
	rest, err := skipPast(context.Background(), oneByOne{r}, Ack)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(io.MultiReader(bytes.NewReader(rest), r))
	if string(got) != "rest" {
		t.Fatalf("after the marker: %q", got)
	}
}

type oneByOne struct{ r io.Reader }

func (o oneByOne) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 3)]) }

// A channel that ends before the marker is an error, not a hang.
func TestHandshakeEOF(t *testing.T) {
	host, guest := net.Pipe()
	go func() { io.CopyN(io.Discard, guest, 16); guest.Close() }()
	done := make(chan error, 1)
	go func() { _, err := OpenSession(context.Background(), host); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("handshake succeeded on a closed channel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handshake hangs after the channel closed")
	}
}
