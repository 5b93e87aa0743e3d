package network

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// A brokered secret's hosts are reached over TLS that the egress point
// terminates: the guest trusts a CA made for its workspace alone, whose
// key never leaves the host. The CA is name-constrained to the hosts the
// workspace's secrets are bound to, so a guest that trusts it trusts it
// for those names only, never for an IP address or any other site.

const (
	brokerCAValidity   = 20 * 365 * 24 * time.Hour // a workspace's life
	brokerLeafValidity = 7 * 24 * time.Hour
	brokerClockSkew    = time.Hour // certificates start this early
	maxBrokerLeaves    = 256       // cached leaf certificates per VM
)

// BrokerCA is a workspace's broker CA: its certificate (what the guest
// trusts) and key (host only).
type BrokerCA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer

	mu       sync.Mutex
	leafKey  crypto.Signer
	leaves   map[string]*tls.Certificate
	leafTill map[string]time.Time
}

// NewBrokerCA makes a CA constrained to hosts (normalized host rules:
// "api.x.org" or "*.x.org") and returns it as one PEM file: certificate,
// then key (keep it owner-only).
func NewBrokerCA(label string, hosts []string) ([]byte, error) {
	if len(hosts) == 0 {
		return nil, errors.New("a broker CA needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var permitted []string
	for _, h := range hosts {
		if base, ok := strings.CutPrefix(h, "*."); ok {
			permitted = append(permitted, "."+base) // names under it, not itself
		} else {
			permitted = append(permitted, h)
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:                randomSerial(),
		Subject:                     pkix.Name{Organization: []string{"pyro"}, CommonName: "pyro secret broker " + label},
		NotBefore:                   now.Add(-brokerClockSkew),
		NotAfter:                    now.Add(brokerCAValidity),
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLenZero:              true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         permitted,
		ExcludedIPRanges: []*net.IPNet{
			{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), nil
}

// ParseBrokerCA reads what NewBrokerCA made.
func ParseBrokerCA(b []byte) (*BrokerCA, error) {
	pair, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, fmt.Errorf("broker CA: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || pair.Leaf == nil || !pair.Leaf.IsCA {
		return nil, errors.New("broker CA: not a CA certificate with a signing key")
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &BrokerCA{
		Cert:     pair.Leaf,
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Leaf.Raw}),
		key:      signer,
		leafKey:  leafKey,
		leaves:   map[string]*tls.Certificate{},
		leafTill: map[string]time.Time{},
	}, nil
}

// Fingerprint is the SHA-256 of the CA certificate, in hex: it marks the
// certificate in the guest's trust stores.
func (ca *BrokerCA) Fingerprint() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// leaf returns a certificate for name, signed by the CA (cached; one key
// for all leaves of this VM).
func (ca *BrokerCA) leaf(name string) (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	now := time.Now()
	if c, ok := ca.leaves[name]; ok && now.Before(ca.leafTill[name]) {
		return c, nil
	}
	if len(ca.leaves) >= maxBrokerLeaves {
		clear(ca.leaves)
		clear(ca.leafTill)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-brokerClockSkew),
		NotAfter:     now.Add(brokerLeafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, ca.leafKey.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: ca.leafKey}
	ca.leaves[name] = c
	ca.leafTill[name] = now.Add(brokerLeafValidity - brokerClockSkew)
	return c, nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n.Add(n, big.NewInt(1))
}
