package network

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// Before a connection whose address an allowed DNS answer gave is dialed,
// the guest's first bytes are read to learn which host it means: the TLS
// ClientHello's server name (SNI) or the HTTP Host header. Otherwise one
// allowed name on a CDN address would open every site behind it. What is
// read is bounded and replayed to the destination once allowed.
const (
	maxSniff = 16<<10 + 5 // one TLS record: a ClientHello that needs more is refused
	// sniffTimeout bounds the whole first request (ClientHello, headers).
	sniffTimeout = 10 * time.Second
	// serverFirstWait is how long a port other than 80 and 443 waits for
	// the guest to speak: protocols where the server speaks first (SSH
	// banners, SMTP) get dialed after it.
	serverFirstWait = time.Second
)

// Kinds of first bytes.
const (
	sniffNone  = ""      // the guest sent nothing in time
	sniffTLS   = "tls"   // a TLS ClientHello; name is its SNI
	sniffHTTP  = "http"  // an HTTP/1 request; name is its Host
	sniffOther = "other" // something else
)

type sniffed struct {
	kind string
	name string // lower case, no port; "" if the protocol gave none
	data []byte // everything read, to replay
}

var errSniffTooLarge = errors.New("the first request is larger than pyro reads to find its host name")

// sniff reads the first request on c. firstWait bounds the wait for the
// first byte, sniffTimeout the rest. An error means a malformed or
// oversized request (refuse it); data holds what was read either way.
func sniff(c net.Conn, firstWait time.Duration) (sniffed, error) {
	rec := &recorder{src: c}
	defer c.SetReadDeadline(time.Time{})
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(firstWait))
	if err := rec.fill(); err != nil {
		return sniffed{kind: sniffNone, data: rec.buf}, nil
	}
	_ = c.SetReadDeadline(start.Add(sniffTimeout))
	var out sniffed
	var err error
	switch {
	case rec.buf[0] == 0x16: // TLS handshake record
		out.kind = sniffTLS
		out.name, err = tlsServerName(rec)
	case looksHTTP(rec.buf):
		out.kind = sniffHTTP
		out.name, err = httpHost(rec)
	default:
		out.kind = sniffOther
	}
	out.data = rec.buf
	if rec.tooLarge {
		err = errSniffTooLarge
	}
	return out, err
}

// tlsServerName runs the standard library's TLS server over the recorded
// stream just far enough to parse the ClientHello.
func tlsServerName(rec *recorder) (string, error) {
	var name string
	stop := errors.New("stop after the ClientHello")
	conf := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name = h.ServerName
		return nil, stop
	}}
	err := tls.Server(replayConn{rec}, conf).Handshake()
	if errors.Is(err, stop) {
		return strings.ToLower(strings.TrimSuffix(name, ".")), nil
	}
	return "", errors.New("not a well-formed TLS ClientHello")
}

// httpHost parses the request head (not the body) and returns its host.
func httpHost(rec *recorder) (string, error) {
	req, err := http.ReadRequest(bufio.NewReaderSize(replayConn{rec}, 4096))
	if err != nil {
		return "", errors.New("not a well-formed HTTP request")
	}
	return hostOnly(req.Host), nil
}

var httpMethods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

func looksHTTP(b []byte) bool {
	for _, m := range httpMethods {
		n := min(len(b), len(m))
		if bytes.Equal(b[:n], []byte(m)[:n]) {
			return true
		}
	}
	return false
}

// recorder reads from src, keeping every byte (at most maxSniff).
type recorder struct {
	src      net.Conn
	buf      []byte
	pos      int // where the replay reader is
	tooLarge bool
}

// fill reads once more from src.
func (r *recorder) fill() error {
	if len(r.buf) >= maxSniff {
		r.tooLarge = true
		return errSniffTooLarge
	}
	p := make([]byte, min(4096, maxSniff-len(r.buf)))
	n, err := r.src.Read(p)
	r.buf = append(r.buf, p[:n]...)
	if n > 0 {
		return nil
	}
	return err
}

// replayConn is a read-only view of a recorder: it reads the recorded
// bytes, then records more. Writes (a TLS alert) go nowhere: the guest is
// never answered by the parser.
type replayConn struct{ r *recorder }

func (c replayConn) Read(p []byte) (int, error) {
	if c.r.pos == len(c.r.buf) {
		if err := c.r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.r.buf[c.r.pos:])
	c.r.pos += n
	return n, nil
}

func (c replayConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c replayConn) Close() error                       { return nil }
func (c replayConn) LocalAddr() net.Addr                { return c.r.src.LocalAddr() }
func (c replayConn) RemoteAddr() net.Addr               { return c.r.src.RemoteAddr() }
func (c replayConn) SetDeadline(t time.Time) error      { return nil }
func (c replayConn) SetReadDeadline(t time.Time) error  { return nil }
func (c replayConn) SetWriteDeadline(t time.Time) error { return nil }
