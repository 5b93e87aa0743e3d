package network

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/netutil"
)

// How the broker serves a connection to a bound host: the guest's TLS is
// terminated here (or its plain HTTP read), and an http.Server with a
// reverse proxy in front of a per-connection transport handles its
// requests one by one (broker.go has what it does to each).

// serveBrokerTLS terminates the guest's TLS to a bound host (sn: its
// ClientHello, already read) and serves its requests.
func (s *Stack) serveBrokerTLS(guest net.Conn, dst netip.AddrPort, sn sniffed) {
	cert, err := s.broker.ca.leaf(sn.name)
	if err != nil {
		s.log.Warn("broker: leaf certificate", "name", sn.name, "err", err)
		guest.Close()
		return
	}
	tc := tls.Server(&netutil.PrefixConn{Conn: guest, Prefix: sn.data}, &tls.Config{
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
