package network

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/secrets"
)

// Issue 14's figures: connection setup (TCP + TLS handshake + one small
// HTTPS request) and throughput (one 8 MiB HTTPS download) through plain
// egress, an allow list (SNI read before dialing) and the secret broker
// (TLS terminated and re-originated, the answer scanned for the value),
// interleaved in one run and reported as ratios to plain egress. The
// guest is a second netstack in this process, so the figures are pyro's
// egress point alone, without a VM's own cost.
//
//	go test -run '^$' -bench BenchmarkEgress -benchtime 20x ./internal/network

const benchBody = 8 << 20

type egressMode struct {
	name  string
	g     *guest
	roots *x509.CertPool // what the guest trusts
}

func benchModes(b *testing.B) []egressMode {
	b.Helper()
	upCA, upPool := upstreamCA(b)
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return upCA.leaf(h.ServerName)
	}})
	if err != nil {
		b.Fatal(err)
	}
	big := strings.Repeat("x", benchBody)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	port := portOf(ln.Addr())
	rewrite := func(d netip.AddrPort) netip.AddrPort {
		if d.Addr() == outside {
			return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		}
		return d
	}
	dns := zoneDNS(b, map[string]netip.Addr{"api.test": outside})
	conf := filepath.Join(b.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	caPEM, _ := NewBrokerCA("bench", []string{"api.test"})
	ca, _ := ParseBrokerCA(caPEM)
	brokerRoots := x509.NewCertPool()
	brokerRoots.AddCert(ca.Cert)

	mk := func(rules *Rules, br *Broker) *guest {
		_, g := newNet(b, netOpts{resolvConf: conf, dnsPort: dns, rewrite: rewrite, rules: rules, broker: br})
		g.resolve(b, "api.test", false)
		return g
	}
	return []egressMode{
		{"plain", mk(nil, nil), upPool},
		{"allowlist", mk(&Rules{AllowHosts: []string{"api.test"}}, nil), upPool},
		{"broker", mk(nil, &Broker{CA: ca, Roots: upPool, Secrets: []BrokeredSecret{
			{Name: "T", Placeholder: secrets.NewPlaceholder(), Value: "benchmark-token-value", Hosts: []string{"api.test"}}}}), brokerRoots},
	}
}

// get makes one HTTPS request from the guest on a new connection and
// returns how many body bytes came back.
func (m egressMode) get(b *testing.B, path string) int64 {
	c, err := m.g.dial(ctxTimeout(b, 30*time.Second), netip.AddrPortFrom(outside, 443))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{ServerName: "api.test", RootCAs: m.roots})
	fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("%s %s: %d %v", m.name, path, resp.StatusCode, err)
	}
	return n
}

func BenchmarkEgressSetup(b *testing.B) {
	modes := benchModes(b)
	total := make([]time.Duration, len(modes))
	b.ResetTimer()
	for range b.N {
		for i, m := range modes {
			start := time.Now()
			m.get(b, "/")
			total[i] += time.Since(start)
		}
	}
	reportRatios(b, modes, total, "ms/conn", func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) })
}

func BenchmarkEgressThroughput(b *testing.B) {
	modes := benchModes(b)
	total := make([]time.Duration, len(modes))
	b.ResetTimer()
	for range b.N {
		for i, m := range modes {
			start := time.Now()
			if n := m.get(b, "/big"); n != benchBody {
				b.Fatalf("%s: %d bytes", m.name, n)
			}
			total[i] += time.Since(start)
		}
	}
	reportRatios(b, modes, total, "MB/s", func(d time.Duration) float64 { return float64(benchBody) * float64(b.N) / d.Seconds() / 1e6 })
}

// reportRatios reports each mode's figure and its ratio to plain egress.
func reportRatios(b *testing.B, modes []egressMode, total []time.Duration, unit string, figure func(time.Duration) float64) {
	plain := figure(total[0])
	for i, m := range modes {
		f := figure(total[i])
		b.ReportMetric(f, m.name+"-"+unit)
		if i > 0 {
			b.ReportMetric(f/plain, m.name+"/plain")
		}
	}
}
