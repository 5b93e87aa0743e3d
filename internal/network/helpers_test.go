package network

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// outside is a TEST-NET-3 address the tests use as "a server on the
// internet": the policy check sees it, the rewrite hook then sends the
// connection to a loopback server on the same port.
var outside = netip.MustParseAddr("203.0.113.10")

func rewriteOutside(dst netip.AddrPort) netip.AddrPort {
	if dst.Addr() == outside {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dst.Port())
	}
	return dst
}

// routeOutside is the kernel route check, except that outside counts as
// routed even on a host without a default route.
func routeOutside(a netip.Addr) string {
	if a == outside {
		return ""
	}
	return routeReason(a)
}

// guest is a second gVisor stack on the QEMU end of the pair, configured the
// way the guest agent configures a real guest.
type guest struct {
	ns   *stack.Stack
	link stack.LinkEndpoint
	file *os.File
}

func newGuest(t testing.TB, qemuEnd *os.File) *guest {
	t.Helper()
	return newGuestWith(t, qemuEnd, true)
}

// newGuestWith makes the guest stack; with cleanup, the test closes it.
func newGuestWith(t testing.TB, qemuEnd *os.File, cleanup bool) *guest {
	t.Helper()
	mac, err := tcpip.ParseMACAddress(GuestMAC)
	if err != nil {
		t.Fatal(err)
	}
	link, err := fdbased.New(&fdbased.Options{
		FDs:                  []int{int(qemuEnd.Fd())},
		MTU:                  MTU,
		EthernetHeader:       true,
		Address:              mac,
		ProcessorsPerChannel: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	g := &guest{ns: ns, link: link, file: qemuEnd}
	if terr := ns.CreateNIC(1, link); terr != nil {
		t.Fatal(terr)
	}
	if terr := ns.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: toTCPIP(guestAddr), PrefixLen: PrefixLen},
	}, stack.AddressProperties{}); terr != nil {
		t.Fatal(terr)
	}
	ns.SetRouteTable([]tcpip.Route{
		{Destination: tcpip.AddressWithPrefix{Address: toTCPIP(guestAddr), PrefixLen: PrefixLen}.Subnet(), NIC: 1},
		{Destination: header.IPv4EmptySubnet, Gateway: toTCPIP(gatewayAddr), NIC: 1},
	})
	if cleanup {
		t.Cleanup(g.close)
	}
	return g
}

func (g *guest) close() {
	stopReading(g.file, g.link)
	g.ns.Close()
	g.ns.Wait()
	closeStopFDs(g.link)
	g.file.Close()
}

func (g *guest) dial(ctx context.Context, dst netip.AddrPort) (*gonet.TCPConn, error) {
	return gonet.DialContextTCP(ctx, g.ns, tcpip.FullAddress{NIC: 1, Addr: toTCPIP(dst.Addr()), Port: dst.Port()}, ipv4.ProtocolNumber)
}

func (g *guest) dialUDP(t testing.TB, dst netip.AddrPort) *gonet.UDPConn {
	t.Helper()
	c, err := gonet.DialUDP(g.ns, nil, &tcpip.FullAddress{NIC: 1, Addr: toTCPIP(dst.Addr()), Port: dst.Port()}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (g *guest) listen(t testing.TB, port uint16) *gonet.TCPListener {
	t.Helper()
	l, err := gonet.ListenTCP(g.ns, tcpip.FullAddress{NIC: 1, Addr: toTCPIP(guestAddr), Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Shutdown(); l.Close() })
	return l
}

type netOpts struct {
	policy     Policy
	resolvConf string
	dnsPort    uint16
	udpIdle    time.Duration
	route      func(netip.Addr) string // default routeOutside
	rules      *Rules
	rewrite    func(netip.AddrPort) netip.AddrPort // default rewriteOutside
	broker     *Broker
}

// newNet wires a Stack and a guest stack through a real socketpair.
func newNet(t testing.TB, o netOpts) (*Stack, *guest) {
	t.Helper()
	if o.policy == "" {
		o.policy = PolicyEgress
	}
	if o.route == nil {
		o.route = routeOutside
	}
	if o.resolvConf == "" {
		o.resolvConf = filepath.Join(t.TempDir(), "resolv.conf")
		if err := os.WriteFile(o.resolvConf, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if o.rewrite == nil {
		o.rewrite = rewriteOutside
	}
	hostEnd, qemuEnd, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(hostEnd, Options{
		Policy:     o.policy,
		Rules:      o.rules,
		Broker:     o.broker,
		ResolvConf: o.resolvConf,
		hooks:      &testHooks{rewrite: o.rewrite, route: o.route, dnsPort: o.dnsPort, udpIdle: o.udpIdle},
	})
	if err != nil {
		qemuEnd.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, newGuest(t, qemuEnd)
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// hostTCPListener listens on addr and reports every accepted connection.
func hostTCPListener(t testing.TB, network, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln
}

// hostNonLoopback returns an IPv4 address of a host interface that is not
// loopback (and not in the guest subnet), if there is one.
func hostNonLoopback() (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		p, ok := addrPrefix(a)
		if !ok {
			continue
		}
		ip := p.Addr()
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !guestSubnet.Contains(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func portOf(a net.Addr) uint16 {
	switch v := a.(type) {
	case *net.TCPAddr:
		return uint16(v.Port)
	case *net.UDPAddr:
		return uint16(v.Port)
	}
	panic("no port")
}

// ping sends one ICMP echo request from the guest and reports whether a
// reply came back within wait.
func (g *guest) ping(t testing.TB, dst netip.Addr, wait time.Duration) bool {
	t.Helper()
	var wq waiter.Queue
	ep, terr := g.ns.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatal(terr)
	}
	defer ep.Close()
	if terr := ep.Connect(tcpip.FullAddress{NIC: 1, Addr: toTCPIP(dst)}); terr != nil {
		t.Fatal(terr)
	}
	we, ch := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)

	req := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+8))
	req.SetType(header.ICMPv4Echo)
	copy(req.Payload(), "pyroping")
	var r bytes.Reader
	r.Reset(req)
	if _, terr := ep.Write(&r, tcpip.WriteOptions{}); terr != nil {
		t.Fatal(terr)
	}
	deadline := time.After(wait)
	for {
		var b bytes.Buffer
		_, terr := ep.Read(&b, tcpip.ReadOptions{})
		if terr == nil {
			return header.ICMPv4(b.Bytes()).Type() == header.ICMPv4EchoReply
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			t.Fatal(terr)
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}
