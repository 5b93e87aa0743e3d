package network

import (
	"bytes"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// sniffOf runs sniff on the server side of a pipe the client writes to.
func sniffOf(t *testing.T, wait time.Duration, client func(net.Conn)) (sniffed, error) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go client(a)
	return sniff(b, wait)
}

func TestSniff(t *testing.T) {
	sn, err := sniffOf(t, time.Second, func(c net.Conn) {
		tls.Client(c, &tls.Config{ServerName: "Pypi.Org", InsecureSkipVerify: true}).Handshake()
	})
	if err != nil || sn.kind != sniffTLS || sn.name != "pypi.org" || sn.data[0] != 0x16 {
		t.Fatalf("TLS: %v %+v", err, sn.kind)
	}
	sn, err = sniffOf(t, time.Second, func(c net.Conn) {
		c.Write([]byte("GET /simple/ HTTP/1.1\r\nHost: files.example.org:8080\r\nUser-Agent: x\r\n\r\n"))
	})
	if err != nil || sn.kind != sniffHTTP || sn.name != "files.example.org" || !bytes.HasPrefix(sn.data, []byte("GET /simple/")) {
		t.Fatalf("HTTP: %v %+v", err, sn)
	}
	sn, err = sniffOf(t, time.Second, func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n")) })
	if err != nil || sn.kind != sniffOther || string(sn.data) != "SSH-2.0-OpenSSH_9.2\r\n" {
		t.Fatalf("other: %v %+v", err, sn)
	}
	sn, err = sniffOf(t, 100*time.Millisecond, func(net.Conn) {}) // a server-first protocol
	if err != nil || sn.kind != sniffNone || len(sn.data) != 0 {
		t.Fatalf("silent client: %v %+v", err, sn)
	}
	if _, err := sniffOf(t, time.Second, func(c net.Conn) { c.Write([]byte{0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5}) }); err == nil {
		t.Fatal("a malformed ClientHello passed")
	}
	// A TLS record longer than pyro reads.
	if _, err := sniffOf(t, time.Second, func(c net.Conn) {
		c.Write(append([]byte{0x16, 3, 1, 0xff, 0xff, 1, 0, 0xff, 0xfb}, make([]byte, 70000)...))
	}); err == nil {
		t.Fatal("an oversized ClientHello passed")
	}
	if _, err := sniffOf(t, time.Second, func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 5000))) }); err == nil {
		t.Fatal("an oversized request head passed")
	}
}

func TestNameReason(t *testing.T) {
	al, _ := compile(Rules{AllowHosts: []string{"pypi.org"}})
	for _, tt := range []struct {
		port  uint16
		sn    sniffed
		allow bool
	}{
		{443, sniffed{kind: sniffTLS, name: "pypi.org"}, true},
		{443, sniffed{kind: sniffTLS, name: "evil.org"}, false},
		{443, sniffed{kind: sniffTLS}, false},
		{443, sniffed{kind: sniffHTTP, name: "pypi.org"}, true},
		{443, sniffed{kind: sniffOther}, false},
		{443, sniffed{kind: sniffNone}, false},
		{80, sniffed{kind: sniffOther}, false},
		{80, sniffed{kind: sniffHTTP}, false},
		{22, sniffed{kind: sniffOther}, true},
		{22, sniffed{kind: sniffNone}, true},
		{8443, sniffed{kind: sniffTLS, name: "evil.org"}, false},
	} {
		if got := nameReason(al, tt.port, tt.sn, nil) == ""; got != tt.allow {
			t.Errorf("port %d %+v: allowed %v, want %v", tt.port, tt.sn, got, tt.allow)
		}
	}
}
