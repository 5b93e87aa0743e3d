package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// AuthEcho is an API on an Outside: HTTPS on port 443 (a certificate of
// its own test CA for the names given) and HTTP on port 80. It keeps the
// Authorization header of every request and echoes it in its answer, as
// an API that reflects a credential would.
type AuthEcho struct {
	CAFile string // the test CA's certificate (PEM): trust it to verify the server
	CAPEM  string

	mu  sync.Mutex
	got []AuthSeen
}

// BigBody is the size of what GET /big answers.
const BigBody = 16 << 20

// AuthSeen is one request the API received.
type AuthSeen struct {
	Scheme, Host, Authorization string
}

// ServeAuthEcho starts an AuthEcho at the Outside's address for names.
func (o *Outside) ServeAuthEcho(t testing.TB, names ...string) *AuthEcho {
	t.Helper()
	caPEM, cert := testCA(t, names)
	a := &AuthEcho{CAFile: filepath.Join(t.TempDir(), "test-ca.pem"), CAPEM: string(caPEM)}
	if err := os.WriteFile(a.CAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	host, _, _ := strings.Cut(o.Addr, ":")
	var tlsLn, plainLn net.Listener
	inNamespace(t, o.Netns, func() (err error) {
		if tlsLn, err = net.Listen("tcp", net.JoinHostPort(host, "443")); err != nil {
			return err
		}
		plainLn, err = net.Listen("tcp", net.JoinHostPort(host, "80"))
		return err
	})
	tlsLn = tls.NewListener(tlsLn, &tls.Config{Certificates: []tls.Certificate{cert}})
	for _, ln := range []struct {
		l      net.Listener
		scheme string
	}{{tlsLn, "https"}, {plainLn, "http"}} {
		srv := &http.Server{Handler: a.handler(ln.scheme), ReadHeaderTimeout: 30 * time.Second}
		go srv.Serve(ln.l)
		t.Cleanup(func() { srv.Close() })
	}
	return a
}

func (a *AuthEcho) handler(scheme string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" { // a download for throughput figures
			w.Header().Set("Content-Length", fmt.Sprint(BigBody))
			chunk := make([]byte, 64<<10)
			for range BigBody / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			return
		}
		auth := r.Header.Get("Authorization")
		a.mu.Lock()
		a.got = append(a.got, AuthSeen{Scheme: scheme, Host: r.Host, Authorization: auth})
		a.mu.Unlock()
		w.Header().Set("X-Echo-Authorization", auth)
		fmt.Fprintf(w, "%s %s saw Authorization: %s\n", scheme, r.Host, auth)
	})
}

// Seen returns the requests received so far.
func (a *AuthEcho) Seen() []AuthSeen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuthSeen(nil), a.got...)
}

// testCA makes a CA and a server certificate for names signed by it.
func testCA(t testing.TB, names []string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pyro test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}
}
