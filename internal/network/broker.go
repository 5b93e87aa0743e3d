package network

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/secrets"
)

// The secret broker. A brokered secret never enters the guest: the guest
// holds a placeholder, and on connections to the hosts the secret is bound
// to (ports 80 and 443), the egress point reads the guest's HTTP requests
// and puts the real value where the placeholder is in a request header.
// HTTPS to a bound host is terminated here with the workspace's broker CA
// (brokerca.go) and re-originated to the real host with normal
// verification. What comes back from that host has the real value replaced
// by [REDACTED], so a server that echoes it shows the guest nothing. A
// placeholder sent anywhere else goes out unchanged and is logged.

// brokerGuestWait bounds the guest's side of the TLS handshake and of
// each request head: a guest under software emulation on a loaded host
// can take many seconds for its key exchange (10 s was seen to cut
// handshakes short).
const brokerGuestWait = time.Minute

// BrokerCAEnv names a PEM file of more CA certificates the broker trusts
// when it verifies the real servers (besides the host's trust store): a
// corporate TLS proxy's CA, or a test server's.
const BrokerCAEnv = "PYRO_BROKER_CA_FILE"

// CodeBrokerNeedsNetwork: a brokered secret on a VM without a network.
const CodeBrokerNeedsNetwork = "secret_broker_needs_network"

// BrokeredSecret is one secret the egress point puts into requests.
type BrokeredSecret struct {
	Name        string
	Placeholder string
	Value       string
	Hosts       []string // normalized host rules: "api.x.org", "*.x.org"
}

// Broker configures a Stack's secret broker.
type Broker struct {
	CA      *BrokerCA
	Secrets []BrokeredSecret
	// Roots verify the real servers; nil: the host's trust store plus
	// the certificates in $PYRO_BROKER_CA_FILE.
	Roots *x509.CertPool
}

// broker is a Broker ready for use.
type broker struct {
	ca      *BrokerCA
	secrets []brokered
	roots   *x509.CertPool
	redact  *secrets.Redactor // the real values, in responses
}

type brokered struct {
	BrokeredSecret
	value string // as put into headers: without surrounding white space
	hosts *allowlist
}

// ValidateBrokerHosts checks the hosts a secret is bound to, for a VM of
// policy p, and returns them normalized.
func ValidateBrokerHosts(p Policy, name string, hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, errdefs.InvalidArgument("broker_hosts", "secret %s is brokered but bound to no host: name the hosts that may receive it (--secret-broker %s=HOST[,HOST])", name, name)
	}
	out, err := normalizeAll("broker_hosts", hosts, NormalizeHost)
	if err != nil {
		return nil, err
	}
	if !p.Enabled() {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, CodeBrokerNeedsNetwork,
			"secret %s is brokered at the egress point, and network_policy %q has none: use network_policy egress (CLI --network-policy egress)", name, p)
	}
	return out, nil
}

func newBroker(b *Broker) (*broker, error) {
	if b.CA == nil {
		return nil, errors.New("secret broker without a CA")
	}
	out := &broker{ca: b.CA, roots: b.Roots}
	if out.roots == nil {
		var err error
		if out.roots, err = brokerRoots(); err != nil {
			return nil, err
		}
	}
	var values []string
	for _, s := range b.Secrets {
		al, err := compile(Rules{AllowHosts: s.Hosts})
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(s.Placeholder, secrets.PlaceholderPrefix) {
			return nil, fmt.Errorf("secret %s has no placeholder", s.Name)
		}
		out.secrets = append(out.secrets, brokered{BrokeredSecret: s, value: strings.TrimSpace(s.Value), hosts: al})
		values = append(values, s.Value)
	}
	out.redact = secrets.NewRedactor(values...)
	return out, nil
}

// brokerRoots is the host's trust store plus $PYRO_BROKER_CA_FILE.
func brokerRoots() (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	path := os.Getenv(BrokerCAEnv)
	if path == "" {
		return pool, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BrokerCAEnv, err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", BrokerCAEnv, path)
	}
	return pool, nil
}

// binds reports whether some secret is bound to host.
func (b *broker) binds(host string) bool {
	for _, s := range b.secrets {
		if s.hosts.allowsName(host) {
			return true
		}
	}
	return false
}

// brokerPort reports whether connections to port may carry brokered
// requests (and are read before they are dialed).
func brokerPort(port uint16) bool { return port == 80 || port == 443 }

// fill replaces, in every header of h, the placeholders of the secrets
// bound to host with their values when trusted (the destination is proven
// to be host); any other placeholder stays and is returned by name.
func (b *broker) fill(h http.Header, host string, trusted bool) (unbound []string) {
	for key, vals := range h {
		for i, v := range vals {
			vals[i] = b.fillValue(v, host, trusted, &unbound)
			if strings.EqualFold(key, "Authorization") || strings.EqualFold(key, "Proxy-Authorization") {
				vals[i] = b.fillBasic(vals[i], host, trusted, &unbound)
			}
		}
	}
	return unbound
}

func (b *broker) fillValue(v, host string, trusted bool, unbound *[]string) string {
	for _, s := range b.secrets {
		if !strings.Contains(v, s.Placeholder) {
			continue
		}
		if trusted && s.hosts.allowsName(host) {
			v = strings.ReplaceAll(v, s.Placeholder, s.value)
		} else {
			*unbound = append(*unbound, s.Name)
		}
	}
	return v
}

// fillBasic handles "Basic base64(user:password)", where a placeholder
// is hidden by the encoding (Git and many clients send tokens this way).
func (b *broker) fillBasic(v, host string, trusted bool, unbound *[]string) string {
	scheme, enc, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return v
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil || !strings.Contains(string(raw), secrets.PlaceholderPrefix) {
		return v
	}
	filled := b.fillValue(string(raw), host, trusted, unbound)
	return scheme + " " + base64.StdEncoding.EncodeToString([]byte(filled))
}

// serveBrokerTLS terminates the guest's TLS to a bound host (sn: its
// ClientHello, already read) and serves its requests.
func (s *Stack) serveBrokerTLS(guest net.Conn, dst netip.AddrPort, sn sniffed) {
	cert, err := s.broker.ca.leaf(sn.name)
	if err != nil {
		s.log.Warn("broker: leaf certificate", "name", sn.name, "err", err)
		guest.Close()
		return
	}
	tc := tls.Server(&prefixConn{Conn: guest, prefix: sn.data}, &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{"http/1.1"}, // no HTTP/2: requests are read one by one
		MinVersion:   tls.VersionTLS12,
	})
	_ = guest.SetDeadline(time.Now().Add(brokerGuestWait))
	if err := tc.Handshake(); err != nil {
		s.log.Info("broker: guest TLS handshake failed", "name", sn.name, "err", err)
		guest.Close()
		return
	}
	_ = guest.SetDeadline(time.Time{})
	s.serveBroker(tc, dst, sn.name)
}

// serveBroker serves the HTTP requests on guest (TLS-terminated when
// tlsName is set, plain otherwise) through a reverse proxy that fills the
// placeholders and dials dst for every upstream connection.
func (s *Stack) serveBroker(guest net.Conn, dst netip.AddrPort, tlsName string) {
	upstream := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			return d.DialContext(ctx, "tcp", s.target(dst).String())
		},
		DisableCompression:  true, // responses are scanned for the values
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: dialTimeout,
	}
	if tlsName != "" {
		upstream.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := upstream.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, &tls.Config{ServerName: tlsName, RootCAs: s.broker.roots, MinVersion: tls.VersionTLS12})
			hctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	defer upstream.CloseIdleConnections()
	proxy := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { s.brokerRewrite(pr, dst, tlsName) },
		Transport:      upstream,
		ModifyResponse: s.broker.redactResponse,
		ErrorLog:       log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			msg := s.broker.redact.String(err.Error())
			s.log.Debug("broker: upstream", "dst", dst, "name", hostOnly(r.Host), "err", msg)
			http.Error(w, "pyro secret broker: "+msg, http.StatusBadGateway)
		},
	}
	srv := &http.Server{
		Handler:           s.brokerGate(proxy, dst, tlsName),
		BaseContext:       func(net.Listener) context.Context { return s.ctx }, // Close aborts upstream requests
		ReadHeaderTimeout: brokerGuestWait,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
		MaxHeaderBytes:    maxHTTPHead,
	}
	ln := newOneConnListener(guest)
	if !s.conns.add(ln) {
		guest.Close()
		return
	}
	defer s.conns.remove(ln)
	_ = srv.Serve(ln) // returns once the connection is closed
	// Wait for its handler to return (it ends with the connection), so
	// nothing of this connection outlives the Stack.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), dialTimeout)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		_ = srv.Close()
	}
}

// brokerGate refuses what must not pass the proxy: tunnels, and requests
// for hosts the egress rules do not allow (the address may be shared).
func (s *Stack) brokerGate(next http.Handler, dst netip.AddrPort, tlsName string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostOnly(r.Host)
		reason := requestReason(s.allow.Load(), r.Method, host)
		if reason == "" && r.Method == http.MethodConnect {
			reason = "HTTP CONNECT (a tunnel) to a host a brokered secret is bound to"
		}
		if reason != "" {
			s.refuse("tcp", dst, host, reason)
			w.Header().Set("Connection", "close")
			http.Error(w, "pyro: refused by the egress rules: "+reason, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// brokerRewrite points a guest request at its real host and fills the
// placeholders where the destination is proven to be that host: over TLS,
// the request names the server the upstream certificate was verified for;
// over plain HTTP, the guest's destination is an address this VM's DNS
// relay answered for the request's host.
func (s *Stack) brokerRewrite(pr *httputil.ProxyRequest, dst netip.AddrPort, tlsName string) {
	host := hostOnly(pr.In.Host)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = pr.In.Host
	trusted := false
	if tlsName != "" {
		pr.Out.URL.Scheme = "https"
		pr.Out.URL.Host = tlsName // the verified name; the dial goes to dst
		trusted = host == tlsName
	} else {
		trusted = s.answers.has(host, dst.Addr())
	}
	pr.Out.Host = pr.In.Host
	pr.Out.Header.Del("Accept-Encoding") // plain responses, so they can be scanned
	for _, name := range s.broker.fill(pr.Out.Header, host, trusted) {
		s.refuse("tcp", dst, host, s.unboundReason(name, host, tlsName, trusted))
	}
}

// unboundReason words a placeholder left in place, for the network log.
// host is the guest's: bounded and printable before it is quoted.
func (s *Stack) unboundReason(secret, host, tlsName string, trusted bool) string {
	host = cleanName(host)
	switch {
	case tlsName != "" && !trusted:
		return fmt.Sprintf("placeholder of brokered secret %s not replaced: the request names host %q inside TLS for %q", secret, host, tlsName)
	case tlsName == "" && s.broker.bindsSecret(secret, host):
		return fmt.Sprintf("placeholder of brokered secret %s not replaced: %s was no DNS answer for %q to this VM (resolve the name through the guest's DNS)", secret, "the address", host)
	}
	return fmt.Sprintf("placeholder of brokered secret %s not replaced: the secret is not bound to %q (bind it with --secret-broker %s=%s)", secret, host, secret, host)
}

func (b *broker) bindsSecret(name, host string) bool {
	for _, s := range b.secrets {
		if s.Name == name && s.hosts.allowsName(host) {
			return true
		}
	}
	return false
}

// notePlaceholders logs placeholders in a request that is passed through
// unchanged (plain HTTP to a host no secret is bound to).
func (s *Stack) notePlaceholders(dst netip.AddrPort, host string, h http.Header) {
	if s.broker == nil {
		return
	}
	for _, name := range s.broker.fill(h.Clone(), host, false) {
		s.refuse("tcp", dst, host, s.unboundReason(name, host, "", false))
	}
}

// redactResponse replaces the real values in what the bound host answers,
// so that a server echoing a header shows the guest nothing. A body in an
// encoding other than gzip cannot be scanned and is refused.
func (b *broker) redactResponse(resp *http.Response) error {
	for _, vals := range resp.Header {
		for i, v := range vals {
			vals[i] = b.redact.String(v)
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil // an upgraded stream passes as is (documented)
	}
	switch ce := strings.ToLower(resp.Header.Get("Content-Encoding")); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return fmt.Errorf("a gzip response body that cannot be read: %w", err)
		}
		resp.Body = readCloser{zr, resp.Body}
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	default:
		return fmt.Errorf("the response is in encoding %q, which the broker cannot scan for secret values", ce)
	}
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return nil
	}
	resp.Body = readCloser{b.redact.Reader(resp.Body), resp.Body}
	resp.Header.Del("Content-Length") // redaction may change the length
	resp.ContentLength = -1
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// oneConnListener hands one connection to an http.Server, then blocks in
// Accept until that connection is closed, so Serve returns when the
// connection is done (or the listener is closed).
type oneConnListener struct {
	conn net.Conn
	mu   sync.Mutex
	done chan struct{}
	once sync.Once
	took bool
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{done: make(chan struct{})}
	l.conn = &notifyConn{Conn: c, closed: l.Close}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.took {
		l.took = true
		l.mu.Unlock()
		return l.conn, nil
	}
	l.mu.Unlock()
	<-l.done
	return nil, net.ErrClosed
}

// Close closes the connection too (Stack.Close tears everything down).
func (l *oneConnListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.conn.(*notifyConn).Conn.Close()
	})
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

type notifyConn struct {
	net.Conn
	closed func() error
}

func (c *notifyConn) Close() error { return c.closed() }
