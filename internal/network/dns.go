package network

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// The guest's resolver is the gateway; queries are relayed, as raw DNS
// messages, to the host's own resolvers. This is the only path on which the
// guest's traffic may reach a loopback address (e.g. 127.0.0.53), and only
// the host-configured nameservers on the DNS port. A local resolver may trust
// local clients (updates, zone transfers), so only plain queries pass.

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
		if !validDNSQuery(buf[:n]) {
			s.log.Debug("dropped DNS message: not a plain query", "proto", "udp")
			continue
		}
		query := bytes.Clone(buf[:n])
		name, refused, answer := s.dnsVerdict(query)
		if refused {
			if answer != nil {
				_, _ = pc.WriteTo(answer, from)
			}
			continue
		}
		if !acquire(s.dnsSlots) {
			s.log.Debug("dropped DNS query: too many in flight", "limit", maxDNSQueries)
			continue
		}
		if !s.goTracked(func() {
			defer release(s.dnsSlots)
			if resp := s.relayDNS(query); resp != nil {
				s.learnAnswer(name, resp)
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
		if !acquire(s.dnsTCPSlots) {
			s.log.Debug("refused DNS connection: too many", "limit", maxDNSTCPConns)
			c.Close()
			continue
		}
		if !s.goTracked(func() {
			defer release(s.dnsTCPSlots)
			s.relayDNSTCP(c)
		}) {
			release(s.dnsTCPSlots)
			c.Close()
			return
		}
	}
}

// relayDNSTCP relays a guest DNS-over-TCP connection to the first upstream
// that accepts one. Guest messages are checked one by one (the first before
// any upstream is dialed); the first bad one, or dnsTCPIdle without a message
// either way, closes both connections. Responses are copied back as they come.
func (s *Stack) relayDNSTCP(guest net.Conn) {
	if !s.conns.add(guest) {
		guest.Close()
		return
	}
	defer s.conns.remove(guest)
	defer guest.Close()
	if len(s.resolver.upstreams()) == 0 {
		return
	}
	if s.allow.Load() != nil || s.broker != nil { // the broker learns answers too
		s.relayDNSTCPFiltered(guest)
		return
	}

	_ = guest.SetDeadline(time.Now().Add(dnsTCPIdle))
	first, err := readDNSTCPQuery(guest)
	if err != nil {
		s.log.Debug("DNS over TCP: closed the connection", "err", err)
		return
	}
	host := s.dialDNSTCP()
	if host == nil {
		return
	}
	if !s.conns.add(host) {
		host.Close()
		return
	}
	defer s.conns.remove(host)
	defer host.Close()

	active := func() {
		t := time.Now().Add(dnsTCPIdle)
		_ = guest.SetDeadline(t)
		_ = host.SetDeadline(t)
	}
	active()
	if _, err := host.Write(first); err != nil {
		return
	}

	done := make(chan struct{})
	go func() { // responses, until the upstream closes or goes idle
		defer close(done)
		buf := make([]byte, 16<<10)
		for {
			n, err := host.Read(buf)
			if n > 0 {
				active()
				if _, werr := guest.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		guest.Close()
		host.Close()
	}()
	for {
		msg, err := readDNSTCPQuery(guest)
		if err == nil && s.allow.Load() != nil {
			err = errRulesSet // this relay does not filter: the guest reconnects to one that does
		}
		if errors.Is(err, io.EOF) { // half-close: still wait for the answers
			if cw, ok := host.(closeWriter); ok && cw.CloseWrite() == nil {
				break
			}
		}
		if err == nil {
			active()
			_, err = host.Write(msg)
		}
		if err != nil {
			if errors.Is(err, errBadDNSQuery) || errors.Is(err, errRulesSet) {
				s.log.Debug("DNS over TCP: closed the connection", "err", err)
			}
			guest.Close()
			host.Close()
			break
		}
	}
	<-done
}

// dialDNSTCP connects to the first upstream that accepts; nil if none does.
func (s *Stack) dialDNSTCP() net.Conn {
	for _, up := range s.resolver.upstreams() {
		ctx, cancel := context.WithTimeout(s.ctx, dnsTimeout)
		var d net.Dialer
		host, err := d.DialContext(ctx, "tcp", up.String())
		cancel()
		if err == nil {
			return host
		}
		s.log.Debug("DNS upstream failed", "proto", "tcp", "upstream", up, "err", err)
		if errors.Is(err, context.Canceled) {
			break
		}
	}
	return nil
}

// relayDNSTCPFiltered relays a guest DNS-over-TCP connection one message
// at a time, so that each question is checked against the egress rules and
// each answer is learned: a refused name gets its answer from here, the
// others the upstream's.
func (s *Stack) relayDNSTCPFiltered(guest net.Conn) {
	var host net.Conn
	defer func() {
		if host != nil {
			s.conns.remove(host)
			host.Close()
		}
	}()
	for {
		_ = guest.SetDeadline(time.Now().Add(dnsTCPIdle))
		msg, err := readDNSTCPQuery(guest)
		if err != nil {
			return
		}
		name, refused, resp := s.dnsVerdict(msg[2:])
		if refused && resp == nil {
			return
		}
		if !refused {
			if host == nil {
				if host = s.dialDNSTCP(); host == nil {
					return
				}
				if !s.conns.add(host) {
					host.Close()
					host = nil
					return
				}
			}
			_ = host.SetDeadline(time.Now().Add(dnsTimeout))
			if _, err := host.Write(msg); err != nil {
				return
			}
			if resp, err = readDNSTCPMessage(host); err != nil {
				return
			}
			s.learnAnswer(name, resp)
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := guest.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

var (
	errBadDNSQuery = errors.New("not a plain DNS query")
	errRulesSet    = errors.New("egress rules were set: reconnect to the filtering relay")
)

// readDNSTCPMessage reads one length-prefixed message and returns it
// without the prefix.
func readDNSTCPMessage(r io.Reader) ([]byte, error) {
	msg, err := readDNSTCPFrame(r)
	if err != nil {
		return nil, err
	}
	return msg[2:], nil
}

// readDNSTCPQuery reads one length-prefixed message and returns it, prefix
// included, if it is a plain query. io.EOF means a clean end between messages.
func readDNSTCPQuery(r io.Reader) ([]byte, error) {
	msg, err := readDNSTCPFrame(r)
	if err != nil {
		return nil, err
	}
	if !validDNSQuery(msg[2:]) {
		return nil, errBadDNSQuery
	}
	return msg, nil
}

// readDNSTCPFrame reads one length-prefixed message, prefix included.
func readDNSTCPFrame(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err // io.EOF only if nothing at all was read
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	msg := make([]byte, 2+n)
	copy(msg, l[:])
	if _, err := io.ReadFull(r, msg[2:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}

// validDNSQuery reports whether msg is a plain, well-formed query: QR=0,
// opcode QUERY, one question that is not a zone transfer, no answer or
// authority records, at most one additional record and that an EDNS OPT,
// nothing after it. The parser does not report where it stopped, so the
// message's length is checked against what those parts take on the wire,
// which also rules out a compressed question name (nothing before it to
// point to but the header).
func validDNSQuery(msg []byte) bool {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response || h.OpCode != 0 {
		return false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || qs[0].Type == dnsmessage.TypeAXFR || qs[0].Type == dnsTypeIXFR {
		return false
	}
	if _, err := p.Answer(); !errors.Is(err, dnsmessage.ErrSectionDone) {
		return false
	}
	if err := p.SkipAllAnswers(); err != nil { // moves the parser to the next section
		return false
	}
	if _, err := p.Authority(); !errors.Is(err, dnsmessage.ErrSectionDone) {
		return false
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return false
	}
	size := dnsHeaderLength + nameWireLength(qs[0].Name) + 4 // + QTYPE, QCLASS
	switch rh, err := p.AdditionalHeader(); {
	case errors.Is(err, dnsmessage.ErrSectionDone):
	case err != nil || rh.Type != dnsmessage.TypeOPT || rh.Name.String() != ".":
		return false
	default:
		if err := p.SkipAdditional(); err != nil {
			return false
		}
		if _, err := p.AdditionalHeader(); !errors.Is(err, dnsmessage.ErrSectionDone) {
			return false
		}
		size += 1 + 10 + int(rh.Length) // root name, TYPE..RDLENGTH, RDATA
	}
	return size == len(msg)
}

// dnsTypeIXFR has no constant in dnsmessage.
const dnsTypeIXFR dnsmessage.Type = 251

// nameWireLength is the size of an uncompressed name on the wire: each
// label's length byte and bytes, then the root's zero (the parser's text
// form is each label followed by a dot, or a single dot for the root).
func nameWireLength(n dnsmessage.Name) int {
	if n.String() == "." {
		return 1
	}
	return int(n.Length) + 1
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
