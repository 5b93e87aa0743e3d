package testutil

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// ServeDNS runs a DNS server for zone (name -> IPv4 address; other names
// get NXDOMAIN) on port 53, UDP and TCP, at the Outside's address, and
// returns a resolv.conf naming it: point network.ResolvConfEnv at it so
// that guests resolve through this server.
func (o *Outside) ServeDNS(t testing.TB, zone map[string]string) string {
	t.Helper()
	host, _, _ := strings.Cut(o.Addr, ":")
	addr := net.JoinHostPort(host, "53")
	var pc net.PacketConn
	var ln net.Listener
	inNamespace(t, o.Netns, func() (err error) {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", addr)
		return err
	})
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := dnsAnswer(zone, buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go ServeDNSStream(c, ZoneAnswer(zone))
		}
	}()
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver "+host+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// ServeDNSStream answers DNS over a TCP connection (length-prefixed
// messages) with answer until the peer closes or answer returns nil.
func ServeDNSStream(c net.Conn, answer func(q []byte) []byte) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		r := answer(q)
		if r == nil {
			return
		}
		c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
	}
}

// ZoneAnswer answers DNS queries from zone (name -> IPv4 address):
// NXDOMAIN for other names, no records for other types; nil for a message
// that is not a query.
func ZoneAnswer(zone map[string]string) func(q []byte) []byte {
	return func(q []byte) []byte { return dnsAnswer(zone, q) }
}

// dnsAnswer answers an A query from zone (AAAA and others: no records).
func dnsAnswer(zone map[string]string, q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qq, err := p.Question()
	if err != nil {
		return nil
	}
	ip, ok := zone[strings.TrimSuffix(qq.Name.String(), ".")]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	_ = b.StartQuestions()
	_ = b.Question(qq)
	if a, err := netip.ParseAddr(ip); ok && err == nil && a.Is4() && qq.Type == dnsmessage.TypeA {
		_ = b.StartAnswers()
		_ = b.AResource(dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 300}, dnsmessage.AResource{A: a.As4()})
	}
	msg, _ := b.Finish()
	return msg
}

// ServeTLS runs an HTTPS server (self-signed) at the Outside's address on
// port, answering "tls hello HOST" with the request's Host; it returns
// HOST:PORT to dial.
func (o *Outside) ServeTLS(t testing.TB, port int) string {
	t.Helper()
	host, _, _ := strings.Cut(o.Addr, ":")
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	var ln net.Listener
	inNamespace(t, o.Netns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls hello %s", r.Host)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return addr
}
