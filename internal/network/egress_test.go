package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// A refusal must be a reset, seen at once: not a hang until the dial timeout.
func expectRefused(t *testing.T, g *guest, dst netip.AddrPort) {
	t.Helper()
	start := time.Now()
	c, err := g.dial(ctxTimeout(t, 5*time.Second), dst)
	if err == nil {
		c.Close()
		t.Fatalf("guest connected to %s", dst)
	}
	if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("dial %s: %v after %s; want an immediate reset", dst, err, time.Since(start))
	}
}

func TestTCPBlockedDestinations(t *testing.T) {
	_, g := newNet(t, netOpts{})
	accepted := make(chan net.Conn, 10)
	ln := hostTCPListener(t, "tcp4", "0.0.0.0:0", func(c net.Conn) { accepted <- c })
	port := portOf(ln.Addr())

	expectRefused(t, g, netip.AddrPortFrom(gatewayAddr, port))
	expectRefused(t, g, netip.MustParseAddrPort("169.254.169.254:80"))
	expectRefused(t, g, netip.AddrPortFrom(netip.MustParseAddr("10.0.2.3"), port))
	if ip, ok := hostNonLoopback(); ok {
		expectRefused(t, g, netip.AddrPortFrom(ip, port))
	} else {
		t.Log("no non-loopback host address to test")
	}
	select {
	case c := <-accepted:
		c.Close()
		t.Fatalf("the host listener accepted a guest connection from %s", c.RemoteAddr())
	default:
	}
}

func TestTCPEgress(t *testing.T) {
	_, g := newNet(t, netOpts{})
	ln := hostTCPListener(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite() // half-close: guest must see EOF
	})
	dst := netip.AddrPortFrom(outside, portOf(ln.Addr()))

	c, err := g.dial(ctxTimeout(t, 10*time.Second), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.CloseWrite() // half-close: our read side stays open
		}
		writeErr <- err
	}()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read back after %d bytes: %v", len(got), err)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(payload))
	}

	// A destination that refuses shows up as a refusal in the guest.
	closed := hostTCPListener(t, "tcp4", "127.0.0.1:0", func(net.Conn) {})
	closedPort := portOf(closed.Addr())
	closed.Close()
	expectRefused(t, g, netip.AddrPortFrom(outside, closedPort))
}

func TestUDPEgress(t *testing.T) {
	s, g := newNet(t, netOpts{udpIdle: 300 * time.Millisecond})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()

	c := g.dialUDP(t, netip.AddrPortFrom(outside, portOf(pc.LocalAddr())))
	buf := make([]byte, 65535)
	for _, msg := range []string{"one", "two", "three"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		if got := string(buf[:n]); got != "echo:"+msg {
			t.Fatalf("got %q", got)
		}
	}
	// An idle flow is closed and its slot freed.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.udpSlots) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d UDP flows still open after the idle timeout", len(s.udpSlots))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And the next datagram opens a new one.
	c.Write([]byte("again"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "echo:again" {
		t.Fatalf("after idle: %q, %v", buf[:n], err)
	}
}

func TestUDPBlocked(t *testing.T) {
	_, g := newNet(t, netOpts{})
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := portOf(pc.LocalAddr())
	dsts := []netip.AddrPort{netip.AddrPortFrom(gatewayAddr, port), netip.MustParseAddrPort("169.254.169.254:53")}
	if ip, ok := hostNonLoopback(); ok {
		dsts = append(dsts, netip.AddrPortFrom(ip, port))
	}
	for _, dst := range dsts {
		g.dialUDP(t, dst).Write([]byte("hello host"))
	}
	pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, from, err := pc.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatalf("host received %d bytes from %s", n, from)
	}
}

// TestPing: the gateway answers ping; nothing else does, so a guest cannot
// take an answer from the stack for a sign that a destination is reachable.
func TestPing(t *testing.T) {
	_, g := newNet(t, netOpts{})
	if !g.ping(t, gatewayAddr, 5*time.Second) {
		t.Fatal("the gateway does not answer ping")
	}
	for _, dst := range []string{"169.254.169.254", "203.0.113.10", "8.8.8.8", "10.0.2.3", "127.0.0.1"} {
		if g.ping(t, netip.MustParseAddr(dst), 300*time.Millisecond) {
			t.Errorf("ping %s answered", dst)
		}
	}
	// And the gateway still does after all that.
	if !g.ping(t, gatewayAddr, 5*time.Second) {
		t.Fatal("the gateway does not answer ping")
	}
}

// TestTCPBufferLimits: the stack's per-connection TCP buffers stay small
// (gVisor's default is 1 MiB each way).
func TestTCPBufferLimits(t *testing.T) {
	s, _ := newNet(t, netOpts{})
	var snd tcpip.TCPSendBufferSizeRangeOption
	var rcv tcpip.TCPReceiveBufferSizeRangeOption
	if err := s.ns.TransportProtocolOption(tcp.ProtocolNumber, &snd); err != nil {
		t.Fatal(err)
	}
	if err := s.ns.TransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
		t.Fatal(err)
	}
	if snd.Max > 256<<10 || rcv.Max > 256<<10 || snd.Default > 128<<10 || rcv.Default > 128<<10 {
		t.Fatalf("send %+v, receive %+v", snd, rcv)
	}
}

// TestRouteCheckApplied: the kernel route check runs for TCP and UDP, after
// the static filter has let a destination through.
func TestRouteCheckApplied(t *testing.T) {
	var asked sync.Map
	_, g := newNet(t, netOpts{route: func(a netip.Addr) string {
		asked.Store(a, true)
		if a == outside {
			return "local route (test)"
		}
		return ""
	}})
	accepted := make(chan net.Conn, 1)
	ln := hostTCPListener(t, "tcp4", "127.0.0.1:0", func(c net.Conn) { accepted <- c })
	expectRefused(t, g, netip.AddrPortFrom(outside, portOf(ln.Addr())))
	expectRefused(t, g, netip.MustParseAddrPort("169.254.169.254:80"))

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	g.dialUDP(t, netip.AddrPortFrom(outside, portOf(pc.LocalAddr()))).Write([]byte("hello"))
	pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, from, err := pc.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatalf("host received %d bytes from %s", n, from)
	}
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("the host listener accepted a guest connection")
	default:
	}
	if _, ok := asked.Load(outside); !ok {
		t.Fatal("the route check was not asked")
	}
	if _, ok := asked.Load(netip.MustParseAddr("169.254.169.254")); ok {
		t.Fatal("the route check ran for a statically blocked address")
	}
}
