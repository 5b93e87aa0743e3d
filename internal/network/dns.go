package network

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// The guest's resolver is the gateway; queries are relayed, as raw DNS
// messages, to the host's own resolvers. This is the only path on which the
// guest's traffic may reach a loopback address (e.g. 127.0.0.53), and only
// the host-configured nameservers on the DNS port.

const (
	maxDNSMessage   = 64 << 10
	resolvConfTTL   = 5 * time.Second
	dnsHeaderLength = 12
)

// startDNS listens on Gateway:53, UDP and TCP, inside the stack. Listeners
// take precedence over the forwarders, so this traffic never meets the filter.
func (s *Stack) startDNS() error {
	addr := tcpip.FullAddress{NIC: nicID, Addr: toTCPIP(gatewayAddr), Port: 53}
	pc, err := gonet.DialUDP(s.ns, &addr, nil, ipv4.ProtocolNumber)
	if err != nil {
		return err
	}
	if !s.conns.add(pc) || !s.goTracked(func() { s.serveDNSUDP(pc) }) {
		pc.Close()
	}
	ln, err := gonet.ListenTCP(s.ns, addr, ipv4.ProtocolNumber)
	if err != nil {
		return err
	}
	l := gonetListener{ln}
	if !s.conns.add(l) || !s.goTracked(func() { s.serveDNSTCP(l) }) {
		l.Close()
	}
	return nil
}

// gonetListener makes Close wake a blocked Accept: gonet's Close alone does
// not, Shutdown does.
type gonetListener struct{ *gonet.TCPListener }

func (l gonetListener) Close() error {
	l.Shutdown()
	return l.TCPListener.Close()
}

func (s *Stack) serveDNSUDP(pc *gonet.UDPConn) {
	buf := make([]byte, maxDNSMessage)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if n < dnsHeaderLength {
			continue
		}
		query := bytes.Clone(buf[:n])
		if !acquire(s.dnsSlots) {
			s.log.Debug("dropped DNS query: too many in flight", "limit", maxDNSQueries)
			continue
		}
		if !s.goTracked(func() {
			defer release(s.dnsSlots)
			if resp := s.relayDNS(query); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}) {
			release(s.dnsSlots)
			return
		}
	}
}

// relayDNS tries each upstream in turn within dnsTimeout; nil if none answered.
func (s *Stack) relayDNS(query []byte) []byte {
	ups := s.resolver.upstreams()
	deadline := time.Now().Add(dnsTimeout)
	for i, up := range ups {
		// Share the remaining time among the servers still to try.
		per := time.Until(deadline) / time.Duration(len(ups)-i)
		resp, err := s.exchangeUDP(up, query, time.Now().Add(per))
		if err == nil {
			return resp
		}
		s.log.Debug("DNS upstream failed", "upstream", up, "err", err)
	}
	return nil
}

func (s *Stack) exchangeUDP(up netip.AddrPort, query []byte, deadline time.Time) ([]byte, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(up))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if !s.conns.add(conn) {
		return nil, net.ErrClosed
	}
	defer s.conns.remove(conn)
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, maxDNSMessage)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		// Skip anything that is not the answer to this query (same ID).
		if n >= dnsHeaderLength && bytes.Equal(buf[:2], query[:2]) {
			return bytes.Clone(buf[:n]), nil
		}
	}
}

func (s *Stack) serveDNSTCP(l gonetListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return // closed
		}
		if !acquire(s.tcpSlots) {
			c.Close()
			continue
		}
		if !s.goTracked(func() {
			defer release(s.tcpSlots)
			s.relayDNSTCP(c)
		}) {
			release(s.tcpSlots)
			c.Close()
			return
		}
	}
}

// relayDNSTCP bridges a guest DNS-over-TCP connection to the first upstream
// that accepts one: the messages are length-prefixed, so a byte relay is a
// correct DNS relay.
func (s *Stack) relayDNSTCP(guest net.Conn) {
	for _, up := range s.resolver.upstreams() {
		ctx, cancel := context.WithTimeout(s.ctx, dnsTimeout)
		var d net.Dialer
		host, err := d.DialContext(ctx, "tcp", up.String())
		cancel()
		if err == nil {
			s.bridge(guest, host)
			return
		}
		s.log.Debug("DNS upstream failed", "proto", "tcp", "upstream", up, "err", err)
		if errors.Is(err, context.Canceled) {
			break
		}
	}
	guest.Close()
}

// resolver reads the host's nameservers from resolv.conf, at most every
// resolvConfTTL (the host may switch networks while a VM runs).
type resolver struct {
	path string
	port uint16

	mu      sync.Mutex
	fetched time.Time
	servers []netip.AddrPort
}

func (r *resolver) upstreams() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fetched.IsZero() || time.Since(r.fetched) >= resolvConfTTL {
		r.fetched = time.Now()
		if data, err := os.ReadFile(r.path); err == nil {
			r.servers = parseResolvConf(data, r.port)
		} else if r.servers == nil {
			r.servers = []netip.AddrPort{}
		}
	}
	return r.servers
}

// parseResolvConf returns the "nameserver" addresses of a resolv.conf, with port.
func parseResolvConf(data []byte, port uint16) []netip.AddrPort {
	var out []netip.AddrPort
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		out = append(out, netip.AddrPortFrom(addr.Unmap(), port))
	}
	return out
}
