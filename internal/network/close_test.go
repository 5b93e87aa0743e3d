package network

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestCloseReleasesEverything runs traffic of every kind, leaves some of it
// in flight, and checks Close leaves no goroutine and no descriptor behind.
func TestCloseReleasesEverything(t *testing.T) {
	// Host-side servers live outside the measured window.
	echo, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(struct{ io.Writer }{c}, c) // no splice: its pipes are pooled fds
				c.Close()
			}()
		}
	}()
	udpEcho, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpEcho.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := udpEcho.ReadFrom(buf)
			if err != nil {
				return
			}
			udpEcho.WriteTo(buf[:n], from)
		}
	}()

	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	baseFDs := countFDs(t)
	baseLinks := fdLinks()

	func() {
		hostEnd, qemuEnd, err := Pair()
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(hostEnd, Options{Policy: PolicyEgressPublish, ResolvConf: "/nonexistent",
			hooks: &testHooks{rewrite: rewriteOutside}})
		if err != nil {
			t.Fatal(err)
		}
		g := newGuestNoCleanup(t, qemuEnd)

		// An open egress TCP connection, mid-stream.
		c, err := g.dial(ctxTimeout(t, 5*time.Second), netip.AddrPortFrom(outside, portOf(echo.Addr())))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		// A UDP flow.
		u := g.dialUDP(t, netip.AddrPortFrom(outside, portOf(udpEcho.LocalAddr())))
		u.Write([]byte("x"))
		u.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := u.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		// A published port with a live connection.
		l := g.listen(t, 8000)
		serveGuest(l, func(c net.Conn) { io.Copy(c, c) })
		p, err := s.Publish(8000, 0)
		if err != nil {
			t.Fatal(err)
		}
		hc, err := dialHost(t, p.HostPort)
		if err != nil {
			t.Fatal(err)
		}
		defer hc.Close()
		hc.Write([]byte("y"))
		hc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(hc, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}

		// Close must end, whatever the traffic: a hang fails here, not at
		// the suite's timeout.
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("Close hangs:\n%s", buf[:runtime.Stack(buf, true)])
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.Publish(8001, 0); err == nil {
			t.Fatal("Publish after Close succeeded")
		}
		if n, err := hc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("published connection survived Close: %d, %v", n, err)
		}
		if _, err := dialHost(t, p.HostPort); err == nil {
			t.Fatal("published port still listening after Close")
		}
		hc.Close()
		c.Close()
		u.Close()
		l.Shutdown()
		l.Close()
		g.close()
	}()

	deadline := time.Now().Add(10 * time.Second)
	for {
		n, fds := runtime.NumGoroutine(), countFDs(t)
		if n <= baseGoroutines && fds <= baseFDs {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d (baseline %d), fds %d (baseline %d): %v, was %v\n%s",
				n, baseGoroutines, fds, baseFDs, fdLinks(), baseLinks, buf[:runtime.Stack(buf, true)])
		}
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
}

func fdLinks() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"="+l)
	}
	return out
}

// newGuestNoCleanup makes a guest the test closes itself, inside the
// measured window.
func newGuestNoCleanup(t *testing.T, qemuEnd *os.File) *guest {
	return newGuestWith(t, qemuEnd, false)
}

func TestNewRejectsPolicyOff(t *testing.T) {
	hostEnd, qemuEnd, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer qemuEnd.Close()
	_, err = New(hostEnd, Options{Policy: PolicyOff})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("New(off) = %v", err)
	}
	// New took ownership of hostEnd, also on error.
	if err := hostEnd.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("hostEnd still open: %v", err)
	}
}
