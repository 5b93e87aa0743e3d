package network

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

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
			hooks: &testHooks{rewrite: rewriteOutside, route: routeOutside}})
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

// TestCloseUnderFlood: Close must end while the guest keeps the socketpair
// full. gVisor's reader only checks its stop signal when the socket is empty,
// so this hung before stopReading also shut the socket down.
func TestCloseUnderFlood(t *testing.T) {
	discard := hostTCPListener(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Close()
	})
	udpSink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpSink.Close()
	go func() {
		buf := make([]byte, 65535)
		for {
			if _, _, err := udpSink.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	for _, kind := range []string{"udp", "tcp"} {
		t.Run(kind, func(t *testing.T) {
			for i := range 5 {
				port := portOf(udpSink.LocalAddr())
				if kind == "tcp" {
					port = portOf(discard.Addr())
				}
				floodAndClose(t, kind, port, i)
			}
		})
	}
}

func floodAndClose(t *testing.T, kind string, port uint16, iteration int) {
	hostEnd, qemuEnd, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(hostEnd, Options{Policy: PolicyEgress, ResolvConf: "/nonexistent",
		hooks: &testHooks{rewrite: rewriteOutside, route: routeOutside}})
	if err != nil {
		qemuEnd.Close()
		t.Fatal(err)
	}
	g := newGuestWith(t, qemuEnd, false)

	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	var conns closerSet
	// Through the guest stack: connections or flows to the host sink.
	for range 4 {
		var c net.Conn
		var err error
		if kind == "udp" {
			c, err = gonet.DialUDP(g.ns, nil, &tcpip.FullAddress{NIC: 1, Addr: toTCPIP(outside), Port: port}, ipv4.ProtocolNumber)
		} else {
			c, err = g.dial(ctxTimeout(t, 5*time.Second), netip.AddrPortFrom(outside, port))
		}
		if err != nil {
			t.Fatal(err)
		}
		conns.add(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1400)
			for !stopped() {
				if _, err := c.Write(buf); err != nil && kind == "tcp" {
					return // the stack is closing
				}
			}
		}()
	}
	// Raw frames as fast as the socket takes them (datagrams, or SYNs from
	// ever new ports) to a blocked destination: the stack answers at most
	// with a reset, so this is all cost for its reader.
	fd := int(qemuEnd.Fd())
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint16(0); !stopped(); n++ {
				frame := rawFrame(kind, netip.MustParseAddrPort("169.254.169.254:80"), 10000+uint16(i)*5000+n%5000)
				_, _ = unix.Write(fd, frame)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the socket fill up

	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		buf := make([]byte, 4<<20)
		t.Fatalf("%s flood, iteration %d: Close hangs:\n%s", kind, iteration, buf[:runtime.Stack(buf, true)])
	}
	t.Logf("iteration %d: Close took %s", iteration, time.Since(start))
	close(stop)
	conns.closeAll()
	wg.Wait()
	g.close()
}

// rawFrame is an Ethernet frame from the guest to the gateway: a UDP
// datagram or a TCP SYN, from srcPort to dst.
func rawFrame(kind string, dst netip.AddrPort, srcPort uint16) []byte {
	tl := header.UDPMinimumSize + 64
	proto := header.UDPProtocolNumber
	if kind == "tcp" {
		tl, proto = header.TCPMinimumSize, header.TCPProtocolNumber
	}
	b := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+tl)
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(mustMAC(GuestMAC)),
		DstAddr: tcpip.LinkAddress(mustMAC(gatewayMAC)),
		Type:    header.IPv4ProtocolNumber,
	})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	src, dstAddr := toTCPIP(guestAddr), toTCPIP(dst.Addr())
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(header.IPv4MinimumSize + tl),
		TTL:         64,
		Protocol:    uint8(proto),
		SrcAddr:     src,
		DstAddr:     dstAddr,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	xsum := header.PseudoHeaderChecksum(proto, src, dstAddr, uint16(tl))
	if kind == "tcp" {
		tcp := header.TCP(ip.Payload())
		tcp.Encode(&header.TCPFields{
			SrcPort: srcPort, DstPort: dst.Port(), SeqNum: 1, DataOffset: header.TCPMinimumSize,
			Flags: header.TCPFlagSyn, WindowSize: 65535,
		})
		tcp.SetChecksum(^tcp.CalculateChecksum(xsum))
	} else {
		udp := header.UDP(ip.Payload())
		udp.Encode(&header.UDPFields{SrcPort: srcPort, DstPort: dst.Port(), Length: uint16(tl)})
		udp.SetChecksum(^udp.CalculateChecksum(checksum.Checksum(udp.Payload(), xsum)))
	}
	return b
}

func mustMAC(s string) tcpip.LinkAddress {
	a, err := tcpip.ParseMACAddress(s)
	if err != nil {
		panic(err)
	}
	return a
}
