package network

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/testutil"
	"golang.org/x/net/dns/dnsmessage"
)

// upstreamDNS is a fake resolver on 127.0.0.1, UDP and TCP on one port. It
// answers every message with the message, QR bit set, and "+answer", and
// records the IDs of what it received.
type upstreamDNS struct {
	port uint16

	mu  sync.Mutex
	ids []uint16
}

func (u *upstreamDNS) received() []uint16 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]uint16(nil), u.ids...)
}

func (u *upstreamDNS) answer(q []byte) []byte {
	if len(q) >= 2 {
		u.mu.Lock()
		u.ids = append(u.ids, binary.BigEndian.Uint16(q))
		u.mu.Unlock()
	}
	r := append(bytes.Clone(q), "+answer"...)
	if len(r) > 2 {
		r[2] |= 0x80
	}
	return r
}

func fakeDNS(t *testing.T) *upstreamDNS {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := portOf(pc.LocalAddr())
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			pc.Close()
			continue // TCP port taken: try another
		}
		t.Cleanup(func() { pc.Close(); ln.Close() })
		u := &upstreamDNS{port: port}
		go func() {
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte{0xde, 0xad, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, from) // wrong ID: must be skipped
				pc.WriteTo(u.answer(buf[:n]), from)
			}
		}()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go testutil.ServeDNSStream(c, u.answer)
			}
		}()
		return u
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil
}

// dnsMsg builds a query for example.com: flags, QTYPE and whether to add an
// EDNS OPT record.
func dnsMsg(id, flags, qtype uint16, opt bool) []byte {
	q := binary.BigEndian.AppendUint16(nil, id)
	q = binary.BigEndian.AppendUint16(q, flags)
	ar := uint16(0)
	if opt {
		ar = 1
	}
	q = append(q, 0, 1, 0, 0, 0, 0, byte(ar>>8), byte(ar))
	q = append(q, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0)
	q = binary.BigEndian.AppendUint16(q, qtype)
	q = append(q, 0, 1) // class IN
	if opt {
		// root, TYPE OPT, UDP size 1232, TTL 0, RDLENGTH 4, one empty option.
		q = append(q, 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 0)
	}
	return q
}

func dnsQuery(id uint16) []byte { return dnsMsg(id, 0x0100, 1, false) } // RD, type A

const (
	opcodeUpdate = 5 << 11
	opcodeNotify = 4 << 11
)

func TestValidDNSQuery(t *testing.T) {
	withName := func(name ...byte) []byte {
		q := dnsQuery(1)[:dnsHeaderLength]
		return append(append(q, name...), 0, 1, 0, 1)
	}
	setCount := func(q []byte, i int, v uint16) []byte {
		q = bytes.Clone(q)
		binary.BigEndian.PutUint16(q[4+2*i:], v)
		return q
	}
	optTSIG := dnsMsg(1, 0x0100, 1, true)
	optTSIG[len(optTSIG)-13] = 250 // the additional record's TYPE: TSIG
	optLong := dnsMsg(1, 0x0100, 1, true)
	optLong[len(optLong)-5] = 5 // RDLENGTH past the end
	longName := []byte{}
	for range 5 {
		longName = append(longName, 63)
		longName = append(longName, bytes.Repeat([]byte{'a'}, 63)...)
	}
	longName = append(longName, 0)

	for name, tt := range map[string]struct {
		msg  []byte
		want bool
	}{
		"plain A":             {dnsQuery(1), true},
		"no RD, AAAA":         {dnsMsg(1, 0, 28, false), true},
		"with EDNS":           {dnsMsg(1, 0x0100, 1, true), true},
		"root name":           {withName(0), true},
		"short":               {dnsQuery(1)[:11], false},
		"header only":         {dnsQuery(1)[:12], false},
		"response":            {dnsMsg(1, 0x8100, 1, false), false},
		"UPDATE":              {dnsMsg(1, opcodeUpdate, 6, false), false},
		"NOTIFY":              {dnsMsg(1, opcodeNotify, 6, false), false},
		"AXFR":                {dnsMsg(1, 0, uint16(dnsmessage.TypeAXFR), false), false},
		"IXFR":                {dnsMsg(1, 0, uint16(dnsTypeIXFR), false), false},
		"no question":         {setCount(dnsQuery(1), 0, 0), false},
		"two questions":       {setCount(dnsQuery(1), 0, 2), false},
		"answer records":      {setCount(dnsQuery(1), 1, 1), false},
		"authority records":   {setCount(dnsQuery(1), 2, 1), false},
		"two additional":      {setCount(dnsMsg(1, 0x0100, 1, true), 3, 2), false},
		"additional not OPT":  {optTSIG, false},
		"OPT past the end":    {optLong, false},
		"additional missing":  {setCount(dnsQuery(1), 3, 1), false},
		"trailing bytes":      {append(dnsQuery(1), 0), false},
		"truncated question":  {dnsQuery(1)[:len(dnsQuery(1))-1], false},
		"compression pointer": {withName(0xc0, 0x0c), false},
		"name too long":       {withName(longName...), false},
		"unterminated name":   {append(dnsQuery(1)[:dnsHeaderLength], 3, 'a', 'b'), false},
	} {
		if got := validDNSQuery(tt.msg); got != tt.want {
			t.Errorf("%s: valid = %v, want %v", name, got, tt.want)
		}
	}
}

func newDNSNet(t *testing.T) (*upstreamDNS, *guest) {
	t.Helper()
	up := fakeDNS(t)
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	// A dead first server is skipped; loopback upstreams are allowed here.
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.2\nnameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, g := newNet(t, netOpts{resolvConf: conf, dnsPort: up.port})
	return up, g
}

var dnsServer = netip.AddrPortFrom(gatewayAddr, 53)

func tcpDNSWrite(t testing.TB, c net.Conn, q []byte) {
	t.Helper()
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		t.Fatal(err)
	}
}

func tcpDNSRead(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	r := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func checkAnswer(t *testing.T, resp []byte, id uint16) {
	t.Helper()
	if len(resp) < dnsHeaderLength || binary.BigEndian.Uint16(resp) != id || resp[2]&0x80 == 0 ||
		!bytes.HasSuffix(resp, []byte("+answer")) {
		t.Fatalf("bad answer %x, want one to ID %#x", resp, id)
	}
}

// expectClosed checks the relay closed c (EOF or reset) without answering.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if isTimeout(err) || len(b) != 0 {
		t.Fatalf("connection not closed: read %x, %v", b, err)
	}
}

func TestDNSRelay(t *testing.T) {
	up, g := newDNSNet(t)

	c := g.dialUDP(t, dnsServer)
	c.Write(dnsQuery(0xbeef))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, buf[:n], 0xbeef)

	// TCP: several messages on one connection, one with EDNS.
	tc, err := g.dial(ctxTimeout(t, 5*time.Second), dnsServer)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tcpDNSWrite(t, tc, dnsQuery(0x1234))
	checkAnswer(t, tcpDNSRead(t, tc), 0x1234)
	tcpDNSWrite(t, tc, dnsMsg(0x1235, 0x0100, 28, true))
	checkAnswer(t, tcpDNSRead(t, tc), 0x1235)
	// A half-close still gets the answers to what was sent.
	tcpDNSWrite(t, tc, dnsQuery(0x1236))
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, tcpDNSRead(t, tc), 0x1236)

	if got := up.received(); len(got) != 4 {
		t.Fatalf("upstream received %#x, want 4 queries", got)
	}
}

// TestDNSRelayRejectsNonQueries: updates, notifies, responses and zone
// transfers never reach the host's resolver.
func TestDNSRelayRejectsNonQueries(t *testing.T) {
	up, g := newDNSNet(t)

	// UDP: the bad messages are dropped, the good one after them answered.
	c := g.dialUDP(t, dnsServer)
	for i, q := range [][]byte{
		dnsMsg(0xbad1, opcodeUpdate, 6, false),
		dnsMsg(0xbad2, opcodeNotify, 6, false),
		dnsMsg(0xbad3, 0x8100, 1, false),
		dnsMsg(0xbad4, 0, uint16(dnsmessage.TypeAXFR), false),
		dnsQuery(0xbad5)[:dnsHeaderLength],
	} {
		if _, err := c.Write(q); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	c.Write(dnsQuery(0x600d))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, buf[:n], 0x600d)

	// TCP: a bad first message closes the connection before any upstream
	// is dialed.
	for _, q := range [][]byte{
		dnsMsg(0xbad6, opcodeUpdate, 6, false),
		dnsMsg(0xbad7, 0, uint16(dnsmessage.TypeAXFR), false),
		dnsMsg(0xbad8, 0, uint16(dnsTypeIXFR), false),
	} {
		tc, err := g.dial(ctxTimeout(t, 5*time.Second), dnsServer)
		if err != nil {
			t.Fatal(err)
		}
		tcpDNSWrite(t, tc, q)
		expectClosed(t, tc)
		tc.Close()
	}
	// A bad message after a good one closes it too.
	tc, err := g.dial(ctxTimeout(t, 5*time.Second), dnsServer)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tcpDNSWrite(t, tc, dnsQuery(0x600e))
	checkAnswer(t, tcpDNSRead(t, tc), 0x600e)
	tcpDNSWrite(t, tc, dnsMsg(0xbad9, 0, uint16(dnsmessage.TypeAXFR), false))
	expectClosed(t, tc)

	got := up.received()
	if len(got) != 2 || got[0] != 0x600d || got[1] != 0x600e {
		t.Fatalf("upstream received %#x, want only 0x600d and 0x600e", got)
	}
}

func TestDNSNoNameservers(t *testing.T) {
	_, g := newNet(t, netOpts{}) // empty resolv.conf
	c := g.dialUDP(t, dnsServer)
	c.Write(dnsQuery(1))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Fatalf("got a %d byte answer with no nameservers", n)
	}
	tc, err := g.dial(ctxTimeout(t, 5*time.Second), dnsServer)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(tc); err != nil || len(b) != 0 {
		t.Fatalf("TCP DNS with no nameservers: %q, %v; want a closed connection", b, err)
	}
}
