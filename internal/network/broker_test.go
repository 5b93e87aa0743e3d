package network

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/secrets"
)

const brokerToken = "ghp_realTokenValue0123456789"

// upstreamCA makes a CA for the test's "real" servers and returns it with
// a pool that trusts it.
func upstreamCA(t testing.TB) (*BrokerCA, *x509.CertPool) {
	t.Helper()
	b, err := NewBrokerCA("upstream", []string{"api.test", "other.test"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ParseBrokerCA(b)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return ca, pool
}

// authLog is an upstream server that keeps the Authorization header of
// every request (by Host) and echoes it in its answer.
type authLog struct {
	mu  sync.Mutex
	got map[string][]string
}

func (a *authLog) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" { // until the broker hangs up
			<-r.Context().Done()
			return
		}
		a.mu.Lock()
		a.got[hostOnly(r.Host)] = append(a.got[hostOnly(r.Host)], r.Header.Get("Authorization"))
		a.mu.Unlock()
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		fmt.Fprintf(w, "auth=%s", r.Header.Get("Authorization"))
	})
}

func (a *authLog) last(host string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.got[host]
	if len(g) == 0 {
		return ""
	}
	return g[len(g)-1]
}

// brokerNet is a Stack with one brokered secret bound to api.test, and an
// HTTPS (443) and HTTP (80) upstream for both test names on loopback.
func brokerNet(t *testing.T, roots *x509.CertPool) (*Stack, *guest, *authLog, *BrokerCA, string) {
	t.Helper()
	upCA, upPool := upstreamCA(t)
	if roots == nil {
		roots = upPool
	}
	log := &authLog{got: map[string][]string{}}
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return upCA.leaf(h.ServerName)
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: log.handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	plainLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: log.handler()}
	go plain.Serve(plainLn)
	t.Cleanup(func() { plain.Close() })
	ports := map[uint16]uint16{443: portOf(ln.Addr()), 80: portOf(plainLn.Addr())}

	caPEM, err := NewBrokerCA("test", []string{"api.test"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ParseBrokerCA(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	placeholder := secrets.NewPlaceholder()
	port := zoneDNS(t, map[string]netip.Addr{"api.test": outside, "other.test": outside})
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, g := newNet(t, netOpts{resolvConf: conf, dnsPort: port,
		rewrite: func(d netip.AddrPort) netip.AddrPort {
			if d.Addr() == outside {
				return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[d.Port()])
			}
			return d
		},
		broker: &Broker{CA: ca, Roots: roots, Secrets: []BrokeredSecret{
			{Name: "TOKEN", Placeholder: placeholder, Value: brokerToken + "\n", Hosts: []string{"api.test"}},
		}},
	})
	return s, g, log, ca, placeholder
}

// request sends one request from the guest (TLS when roots is set, with
// SNI sni) and returns the answer's X-Echo header and body.
func (g *guest) request(t *testing.T, port uint16, sni, host, auth string, roots *x509.CertPool) (string, string, error) {
	t.Helper()
	c, err := g.dial(ctxTimeout(t, 10*time.Second), netip.AddrPortFrom(outside, port))
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var conn net.Conn = c
	if roots != nil {
		tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: roots})
		if err := tc.Handshake(); err != nil {
			return "", "", err
		}
		conn = tc
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n", host, auth)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.Header.Get("X-Echo"), string(body), err
}

// The bound host gets the real value (Bearer and Basic), the guest sees it
// nowhere (the echo comes back redacted), an unbound host and a mismatched
// Host get the placeholder, and each placeholder left in place is logged.
func TestBrokerFillsBoundHost(t *testing.T) {
	s, g, log, ca, ph := brokerNet(t, nil)
	guestRoots := x509.NewCertPool()
	guestRoots.AddCert(ca.Cert)
	_, upPool := upstreamCA(t) // another CA: the guest checks unbound hosts only by its own trust

	// Plain HTTP before the guest resolved the name: not proven, not filled.
	if _, body, err := g.request(t, 80, "", "api.test", "Bearer "+ph, nil); err != nil || strings.Contains(body, brokerToken) {
		t.Fatalf("http before DNS: %v %q", err, body)
	}
	if got := log.last("api.test"); got != "Bearer "+ph {
		t.Errorf("http without a DNS answer sent %q", got)
	}
	if !findBlocked(s, "tcp", "api.test", "no DNS answer") {
		t.Errorf("unproven address not logged: %+v", s.BlockedLog())
	}
	g.resolve(t, "api.test", false)
	g.resolve(t, "other.test", false)

	for _, tc := range []struct{ name string }{{"https"}, {"http"}} {
		port, roots := uint16(443), guestRoots
		if tc.name == "http" {
			port, roots = 80, nil
		}
		echo, body, err := g.request(t, port, "api.test", "api.test", "Bearer "+ph, roots)
		if err != nil {
			t.Fatalf("%s bound: %v", tc.name, err)
		}
		if got := log.last("api.test"); got != "Bearer "+brokerToken {
			t.Errorf("%s: the bound host got %q", tc.name, got)
		}
		if strings.Contains(echo+body, brokerToken) || !strings.Contains(body, secrets.Redacted) {
			t.Errorf("%s: the guest saw echo %q body %q", tc.name, echo, body)
		}
	}

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+ph))
	if _, _, err := g.request(t, 443, "api.test", "api.test", basic, guestRoots); err != nil {
		t.Fatal(err)
	}
	if got := log.last("api.test"); got != "Basic "+base64.StdEncoding.EncodeToString([]byte("x-access-token:"+brokerToken)) {
		t.Errorf("basic auth sent %q", got)
	}

	// Unbound: over TLS the broker stays out of the way (the guest talks to
	// the real server); over HTTP the placeholder passes and is logged.
	if _, _, err := g.request(t, 443, "other.test", "other.test", "Bearer "+ph, upPool); err == nil {
		t.Error("an unbound host answered with a certificate of another CA: the broker terminated it")
	}
	if _, _, err := g.request(t, 80, "", "other.test", "Bearer "+ph, nil); err != nil {
		t.Fatal(err)
	}
	if got := log.last("other.test"); got != "Bearer "+ph {
		t.Errorf("unbound host got %q", got)
	}
	if !findBlocked(s, "tcp", "other.test", "not bound") {
		t.Errorf("placeholder to an unbound host not logged: %+v", s.BlockedLog())
	}
	// TLS for the bound name, but a request for the other one.
	if _, _, err := g.request(t, 443, "api.test", "other.test", "Bearer "+ph, guestRoots); err != nil {
		t.Fatal(err)
	}
	if got := log.last("other.test"); got != "Bearer "+ph {
		t.Errorf("mismatched Host got %q", got)
	}
	if !findBlocked(s, "tcp", "other.test", "inside TLS for") {
		t.Errorf("mismatched Host not logged: %+v", s.BlockedLog())
	}
	for _, b := range s.BlockedLog().Entries {
		if strings.Contains(fmt.Sprint(b), brokerToken) {
			t.Errorf("the log shows the value: %+v", b)
		}
	}
}

// The real server is verified: one the broker's roots do not trust gets
// no request, and the guest a 502.
func TestBrokerVerifiesUpstream(t *testing.T) {
	_, g, log, ca, ph := brokerNet(t, x509.NewCertPool())
	guestRoots := x509.NewCertPool()
	guestRoots.AddCert(ca.Cert)
	g.resolve(t, "api.test", false)
	c, err := g.dial(ctxTimeout(t, 10*time.Second), netip.AddrPortFrom(outside, 443))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{ServerName: "api.test", RootCAs: guestRoots})
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", ph)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || log.last("api.test") != "" {
		t.Errorf("untrusted upstream: status %d, server got %q", resp.StatusCode, log.last("api.test"))
	}
}

// The broker CA vouches only for the bound names: never another name or
// an IP address, whatever leaf it is made to sign.
func TestBrokerCANameConstraints(t *testing.T) {
	b, err := NewBrokerCA("t", []string{"api.test", "*.wild.test"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ParseBrokerCA(b)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for name, ok := range map[string]bool{"api.test": true, "a.wild.test": true, "wild.test": false, "evil.test": false, "api.test.evil": false} {
		leaf, err := ca.leaf(name)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(leaf.Certificate[0])
		_, err = cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots})
		if (err == nil) != ok {
			t.Errorf("%s: verify err %v, want ok=%v", name, err, ok)
		}
	}
	if _, err := NewBrokerCA("t", nil); err == nil {
		t.Error("a CA for no host")
	}
	if _, err := ValidateBrokerHosts(PolicyEgress, "T", nil); err == nil {
		t.Error("bound to no host")
	}
	if _, err := ValidateBrokerHosts(PolicyOff, "T", []string{"api.test"}); err == nil {
		t.Error("brokered without a network")
	}
	if _, err := ValidateBrokerHosts(PolicyEgress, "T", []string{"bad host"}); err == nil {
		t.Error("a malformed host")
	}
}

// Closing the stack while the broker waits on the real server ends the
// request and returns: nothing of the connection outlives the Stack.
func TestBrokerCloseMidRequest(t *testing.T) {
	s, g, _, ca, _ := brokerNet(t, nil)
	guestRoots := x509.NewCertPool()
	guestRoots.AddCert(ca.Cert)
	c, err := g.dial(ctxTimeout(t, 10*time.Second), netip.AddrPortFrom(outside, 443))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{ServerName: "api.test", RootCAs: guestRoots})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(tc, "GET /block HTTP/1.1\r\nHost: api.test\r\n\r\n")
	time.Sleep(500 * time.Millisecond) // the request reaches the server
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs on a brokered request in flight")
	}
}
