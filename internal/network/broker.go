package network

import (
	"github.com/pyrovm/pyro/internal/network/egress"

	"compress/gzip"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
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
const CodeBrokerNeedsNetwork = errdefs.CodeBrokerNeedsNetwork

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
	out, err := egress.NormalizeList("broker_hosts", hosts, egress.NormalizeHost)
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

func (b *broker) bindsSecret(name, host string) bool {
	for _, s := range b.secrets {
		if s.Name == name && s.hosts.allowsName(host) {
			return true
		}
	}
	return false
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
