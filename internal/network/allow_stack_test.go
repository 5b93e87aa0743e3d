package network

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/testutil"
	"golang.org/x/net/dns/dnsmessage"
)

// zoneDNS is an upstream resolver on 127.0.0.1 (UDP and TCP on one port)
// that answers A queries from a fixed zone and NXDOMAIN otherwise.
func zoneDNS(t testing.TB, zone map[string]netip.Addr) uint16 {
	t.Helper()
	names := map[string]string{}
	for n, a := range zone {
		names[n] = a.String()
	}
	answer := testutil.ZoneAnswer(names)
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := portOf(pc.LocalAddr())
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			pc.Close()
			continue
		}
		t.Cleanup(func() { pc.Close(); ln.Close() })
		go func() {
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(answer(buf[:n]), from)
			}
		}()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go testutil.ServeDNSStream(c, answer)
			}
		}()
		return port
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// The test zone: two names share outside's address (a CDN), a third has
// its own.
var (
	blockedAddr = netip.MustParseAddr("203.0.113.11")
	testZone    = map[string]netip.Addr{"allowed.test": outside, "shared.test": outside, "a.wild.test": outside, "blocked.test": blockedAddr}
)

func newRulesNet(t *testing.T, rules *Rules) (*Stack, *guest) {
	t.Helper()
	port := zoneDNS(t, testZone)
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return newNet(t, netOpts{resolvConf: conf, dnsPort: port, rules: rules})
}

// resolve asks the gateway for name's A record, over UDP or TCP, and
// returns the rcode and addresses.
func (g *guest) resolve(t testing.TB, name string, overTCP bool) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	var resp []byte
	if overTCP {
		c, err := g.dial(ctxTimeout(t, 10*time.Second), dnsServer)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tcpDNSWrite(t, c, q)
		if resp, err = readDNSTCPMessage(c); err != nil {
			t.Fatalf("resolve %s over TCP: %v", name, err)
		}
	} else {
		c := g.dialUDP(t, dnsServer)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("resolve %s: %v", name, err)
		}
		resp = buf[:n]
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil || h.ID != 0x1234 {
		t.Fatalf("bad answer %v %+v", err, h)
	}
	p.SkipAllQuestions()
	var addrs []netip.Addr
	for {
		if _, err := p.AnswerHeader(); err != nil {
			break
		}
		a, err := p.AResource()
		if err != nil {
			break
		}
		addrs = append(addrs, netip.AddrFrom4(a.A))
	}
	return h.RCode, addrs
}

// httpGet sends GET / with Host host to dst from the guest; ok is whether
// a response came back.
func (g *guest) httpGet(t *testing.T, dst netip.AddrPort, host string) (string, bool) {
	t.Helper()
	c, err := g.dial(ctxTimeout(t, 10*time.Second), dst)
	if err != nil {
		return err.Error(), false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err.Error(), false
	}
	body, _ := io.ReadAll(resp.Body)
	return string(body), true
}

func hostHTTP(t *testing.T, hits *atomic.Int32) uint16 {
	ln := hostTCPListener(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		hits.Add(1)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\nhello %s", 6+len(req.Host), req.Host)
	})
	return portOf(ln.Addr())
}

func findBlocked(s *Stack, proto, name, reasonPart string) bool {
	for _, b := range s.BlockedLog().Entries {
		if b.Protocol == proto && (name == "" || b.Name == name) && strings.Contains(b.Reason, reasonPart) {
			return true
		}
	}
	return false
}

// Allowed names resolve; others get NXDOMAIN (UDP and TCP); an address
// no allowed answer gave is refused; a shared address serves only the
// allowed Host; every refusal is logged with its reason.
func TestRulesDNSAndHTTP(t *testing.T) {
	s, g := newRulesNet(t, &Rules{AllowHosts: []string{"allowed.test", "*.wild.test"}})
	var hits atomic.Int32
	port := hostHTTP(t, &hits)
	dst := netip.AddrPortFrom(outside, port)

	// Before any answer, the address is not allowed, not even by number.
	expectRefused(t, g, dst)
	if !findBlocked(s, "tcp", "", "no DNS answer for an allowed name") {
		t.Errorf("refusal by number not logged: %+v", s.BlockedLog())
	}
	for _, overTCP := range []bool{false, true} {
		if rc, addrs := g.resolve(t, "allowed.test", overTCP); rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0] != outside {
			t.Fatalf("allowed.test (tcp %v): %v %v", overTCP, rc, addrs)
		}
		for _, name := range []string{"blocked.test", "shared.test", "wild.test"} {
			if rc, addrs := g.resolve(t, name, overTCP); rc != dnsmessage.RCodeNameError || len(addrs) != 0 {
				t.Fatalf("%s (tcp %v): %v %v, want NXDOMAIN", name, overTCP, rc, addrs)
			}
		}
	}
	if rc, _ := g.resolve(t, "a.wild.test", false); rc != dnsmessage.RCodeSuccess {
		t.Fatalf("wildcard: %v", rc)
	}
	if !findBlocked(s, "dns", "blocked.test", "NXDOMAIN") || !findBlocked(s, "dns", "wild.test", "NXDOMAIN") {
		t.Errorf("DNS refusals not logged: %+v", s.BlockedLog())
	}
	expectRefused(t, g, netip.AddrPortFrom(blockedAddr, port))

	if body, ok := g.httpGet(t, dst, "allowed.test"); !ok || body != "hello allowed.test" {
		t.Fatalf("allowed host: %q %v", body, ok)
	}
	if body, ok := g.httpGet(t, dst, "a.wild.test:8080"); !ok || body != "hello a.wild.test:8080" {
		t.Fatalf("wildcard host with port: %q %v", body, ok)
	}
	before := hits.Load()
	if body, ok := g.httpGet(t, dst, "shared.test"); ok {
		t.Fatalf("a disallowed Host on an allowed address got through: %q", body)
	}
	if hits.Load() != before {
		t.Fatal("the server saw the disallowed request")
	}
	if !findBlocked(s, "tcp", "shared.test", "HTTP names host") {
		t.Errorf("Host refusal not logged: %+v", s.BlockedLog())
	}
}

// TLS: the ClientHello's server name decides, on an address both names share.
func TestRulesTLSServerName(t *testing.T) {
	s, g := newRulesNet(t, &Rules{AllowHosts: []string{"allowed.test"}})
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "tls ok")
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dst := netip.AddrPortFrom(outside, portOf(srv.Listener.Addr()))
	g.resolve(t, "allowed.test", false)

	handshake := func(name string) error {
		c, err := g.dial(ctxTimeout(t, 10*time.Second), dst)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		tc := tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			return err
		}
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name)
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := handshake("allowed.test"); err != nil {
		t.Fatalf("allowed SNI: %v", err)
	}
	before := hits.Load()
	if err := handshake("shared.test"); err == nil {
		t.Fatal("a disallowed SNI on an allowed address got through")
	}
	if hits.Load() != before {
		t.Fatal("the server saw the disallowed request")
	}
	if !findBlocked(s, "tcp", "shared.test", "TLS names host") {
		t.Errorf("SNI refusal not logged: %+v", s.BlockedLog())
	}
}

// CIDR rules allow by number, on their ports only; rules change live.
func TestRulesCIDRAndLiveChange(t *testing.T) {
	s, g := newRulesNet(t, &Rules{AllowHosts: []string{"allowed.test"}})
	var hits atomic.Int32
	port := hostHTTP(t, &hits)
	other := hostHTTP(t, &hits)
	dst := netip.AddrPortFrom(outside, port)
	expectRefused(t, g, dst)

	if err := s.SetRules(&Rules{AllowCIDRs: []string{fmt.Sprintf("%s/32:%d", outside, port)}}); err != nil {
		t.Fatal(err)
	}
	// By number, any Host: a CIDR rule does not check names.
	if body, ok := g.httpGet(t, dst, "anything.example"); !ok || body != "hello anything.example" {
		t.Fatalf("CIDR rule: %q %v", body, ok)
	}
	expectRefused(t, g, netip.AddrPortFrom(outside, other))
	if rc, _ := g.resolve(t, "allowed.test", false); rc != dnsmessage.RCodeNameError {
		t.Fatalf("allowed.test after its rule went: %v", rc)
	}
	if err := s.SetRules(&Rules{AllowHosts: []string{"bad name"}}); err == nil {
		t.Fatal("bad rules accepted")
	}
	if r := s.Rules(); r == nil || len(r.AllowCIDRs) != 1 || len(r.AllowHosts) != 0 {
		t.Fatalf("a failed SetRules changed the rules: %+v", r)
	}
	if err := s.SetRules(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.httpGet(t, netip.AddrPortFrom(outside, other), "x"); !ok {
		t.Fatal("without rules the fixed filter alone decides")
	}
}

// The fixed blocks stay first: no rule allows the host or metadata.
func TestRulesCannotLiftFixedBlocks(t *testing.T) {
	s, g := newRulesNet(t, &Rules{AllowCIDRs: []string{"0.0.0.0/0", "10.0.2.0/24", "169.254.0.0/16"}})
	expectRefused(t, g, netip.MustParseAddrPort("169.254.169.254:80"))
	expectRefused(t, g, netip.AddrPortFrom(gatewayAddr, 22))
	if !findBlocked(s, "tcp", "", "no rule can allow it") {
		t.Errorf("fixed block not logged: %+v", s.BlockedLog())
	}
}

// Plain HTTP is checked request by request: keep-alive and pipelining
// cannot switch to another host on the shared address, and bodies
// (Content-Length, chunked) are framed right so allowed requests go on.
func TestRulesHTTPEveryRequest(t *testing.T) {
	s, g := newRulesNet(t, &Rules{AllowHosts: []string{"allowed.test"}})
	var mu = make(chan struct{}, 1)
	var seen []string
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu <- struct{}{}
		seen = append(seen, r.Method+" "+r.Host+" "+string(body))
		<-mu
		fmt.Fprintf(w, "ok %s", r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g.resolve(t, "allowed.test", false)
	dst := netip.AddrPortFrom(outside, portOf(ln.Addr()))

	c, err := g.dial(ctxTimeout(t, 10*time.Second), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	send := func(req string) error {
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		io.ReadAll(resp.Body)
		return resp.Body.Close()
	}
	if err := send("POST /a HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"); err != nil {
		t.Fatalf("chunked POST: %v", err)
	}
	if err := send("PUT /b HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\n\r\nwxyz"); err != nil {
		t.Fatalf("keep-alive PUT: %v", err)
	}
	if err := send("GET /c HTTP/1.1\r\nHost: shared.test\r\n\r\n"); err == nil {
		t.Fatal("a keep-alive request to another host got an answer")
	}
	mu <- struct{}{}
	got := strings.Join(seen, "|")
	<-mu
	if got != "POST allowed.test abcde|PUT allowed.test wxyz" {
		t.Fatalf("the server saw %q", got)
	}
	if !findBlocked(s, "tcp", "shared.test", "HTTP names host") {
		t.Errorf("not logged: %+v", s.BlockedLog())
	}

	// Pipelined: the second request never reaches the server.
	c2, err := g.dial(ctxTimeout(t, 10*time.Second), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c2, "GET /d HTTP/1.1\r\nHost: allowed.test\r\n\r\nCONNECT evil.test:443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	answer, _ := io.ReadAll(c2)
	mu <- struct{}{}
	got = strings.Join(seen, "|")
	<-mu
	if strings.Contains(got, "CONNECT") || !strings.Contains(got, "GET allowed.test") {
		t.Fatalf("pipelined: the server saw %q", got)
	}
	// The request before the refused one still gets its answer, then EOF.
	if !strings.Contains(string(answer), "ok allowed.test") || strings.Count(string(answer), "HTTP/1.1 ") != 1 {
		t.Fatalf("pipelined: the guest read %q", answer)
	}
}
