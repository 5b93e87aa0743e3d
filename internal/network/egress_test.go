package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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

// fakeDNS answers every query with the query, QR bit set, and "+answer".
func fakeDNS(t *testing.T) (port uint16) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = portOf(pc.LocalAddr())
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			pc.Close()
			continue // TCP port taken: try another
		}
		t.Cleanup(func() { pc.Close(); ln.Close() })
		answer := func(q []byte) []byte {
			r := append(bytes.Clone(q), "+answer"...)
			r[2] |= 0x80
			return r
		}
		go func() {
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte{0xde, 0xad, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, from) // wrong ID: must be skipped
				pc.WriteTo(answer(buf[:n]), from)
			}
		}()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, int(l[0])<<8|int(l[1]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					r := answer(q)
					c.Write(append([]byte{byte(len(r) >> 8), byte(len(r))}, r...))
				}()
			}
		}()
		return port
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

func dnsQuery(id uint16) []byte {
	q := []byte{byte(id >> 8), byte(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	return append(q, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1)
}

func TestDNSRelay(t *testing.T) {
	port := fakeDNS(t)
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	// A dead first server is skipped; loopback upstreams are allowed here.
	os.WriteFile(conf, []byte("nameserver 127.0.0.2\nnameserver 127.0.0.1\n"), 0o644)
	_, g := newNet(t, netOpts{resolvConf: conf, dnsPort: port})
	dns := netip.AddrPortFrom(gatewayAddr, 53)

	c := g.dialUDP(t, dns)
	q := dnsQuery(0xbeef)
	c.Write(q)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if resp := buf[:n]; resp[0] != 0xbe || resp[1] != 0xef || resp[2]&0x80 == 0 || !bytes.HasSuffix(resp, []byte("+answer")) {
		t.Fatalf("bad UDP answer %x", resp)
	}

	tc, err := g.dial(ctxTimeout(t, 5*time.Second), dns)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	q = dnsQuery(0x1234)
	tc.Write(append([]byte{byte(len(q) >> 8), byte(len(q))}, q...))
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := io.ReadAll(tc)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp) < 2+len(q) || int(resp[0])<<8|int(resp[1]) != len(resp)-2 || resp[2] != 0x12 ||
		!bytes.HasSuffix(resp, []byte("+answer")) {
		t.Fatalf("bad TCP answer %x", resp)
	}
}

func TestDNSNoNameservers(t *testing.T) {
	_, g := newNet(t, netOpts{}) // empty resolv.conf
	c := g.dialUDP(t, netip.AddrPortFrom(gatewayAddr, 53))
	c.Write(dnsQuery(1))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Fatalf("got a %d byte answer with no nameservers", n)
	}
	tc, err := g.dial(ctxTimeout(t, 5*time.Second), netip.AddrPortFrom(gatewayAddr, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(tc); err != nil || len(b) != 0 {
		t.Fatalf("TCP DNS with no nameservers: %q, %v; want a closed connection", b, err)
	}
}
