package supervisor

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
)

// Where the guest finds the broker CA: its certificate, and the bundle the
// usual variables point at (the system bundle, which also gets the CA).
const (
	guestBrokerDir    = "/run/pyro-broker"
	guestBrokerCert   = guestBrokerDir + "/ca.crt"
	guestBrokerBundle = guestBrokerDir + "/ca-bundle.crt"
	guestBrokerEnv    = "/etc/profile.d/pyro-broker.sh"
)

// loadBroker builds the network's secret broker from the workspace's
// brokered secrets and CA; nil when it has none.
func loadBroker(caPath string, set secrets.Set) (*network.Broker, error) {
	brokered := set.Brokered()
	if len(brokered) == 0 {
		return nil, nil
	}
	fail := func(why string) error {
		return errdefs.New(errdefs.ErrFailedPrecondition, CodeSecretsInstallFailed,
			"the workspace has brokered secrets but its broker CA %s; delete the workspace and create it again with its --secret-broker options", why)
	}
	if caPath == "" {
		return nil, fail("is missing")
	}
	b, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fail("cannot be read (" + err.Error() + ")")
	}
	ca, err := network.ParseBrokerCA(b)
	if err != nil {
		return nil, fail("is damaged")
	}
	out := &network.Broker{CA: ca}
	for _, s := range brokered {
		out.Secrets = append(out.Secrets, network.BrokeredSecret{Name: s.Name, Placeholder: s.Placeholder, Value: s.Value, Hosts: s.BrokerHosts})
	}
	return out, nil
}

// brokerCAScript installs the CA (stdin) into the guest: its own file, the
// system bundles it finds (once: marked by the CA's fingerprint, $1), and
// /etc/profile.d variables for clients that read their own bundle (Python
// requests, Node, curl, Git, OpenSSL and Go programs). Login shells (every
// exec, service and shell pyro starts) read them.
func brokerCAScript() string {
	return strings.Join([]string{
		"set -e",
		"umask 022",
		"mkdir -p " + guestBrokerDir + " /usr/local/share/ca-certificates /etc/profile.d",
		"cat > " + guestBrokerCert,
		"cp " + guestBrokerCert + " /usr/local/share/ca-certificates/pyro-broker.crt",
		"bundle=",
		"for b in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do",
		"  [ -f \"$b\" ] || continue",
		"  grep -q \"pyro-broker-$1\" \"$b\" || { printf '\\n# pyro-broker-%s\\n' \"$1\"; cat " + guestBrokerCert + "; } >> \"$b\"",
		"  [ -n \"$bundle\" ] || bundle=$b",
		"done",
		"if [ -n \"$bundle\" ]; then cat \"$bundle\" > " + guestBrokerBundle + "; else cp " + guestBrokerCert + " " + guestBrokerBundle + "; fi",
		"b=" + guestBrokerBundle,
		"printf 'export SSL_CERT_FILE=%s REQUESTS_CA_BUNDLE=%s CURL_CA_BUNDLE=%s GIT_SSL_CAINFO=%s NODE_EXTRA_CA_CERTS=%s\\n' \"$b\" \"$b\" \"$b\" \"$b\" " + guestBrokerCert + " > " + guestBrokerEnv,
	}, "\n")
}

// InstallBrokerCA makes the guest trust the workspace's broker CA (after
// every boot: the trust store may have been rebuilt meanwhile).
func InstallBrokerCA(ctx context.Context, ex Execer, b *network.Broker) error {
	if b == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, secretsInstallTimeout+agentclient.Grace)
	defer cancel()
	res, err := ex.Exec(ctx, agentproto.ExecRequest{
		Argv: []string{"/bin/sh", "-c", brokerCAScript(), "sh", b.CA.Fingerprint()}, Stdin: b.CA.CertPEM,
		TimeoutMs: secretsInstallTimeout.Milliseconds(), MaxStdout: 4 << 10, MaxStderr: 4 << 10,
	})
	if err == nil && (res.ExitCode != 0 || res.TimedOut) {
		err = fmt.Errorf("the command exited with code %d: %s", res.ExitCode, strings.Join(strings.Fields(string(res.Stderr)), " "))
	}
	if err != nil {
		return errdefs.New(errdefs.ErrFailedPrecondition, CodeSecretsInstallFailed,
			"could not make the guest trust the workspace's secret broker CA: %v; the environment's image needs /bin/sh, mkdir, cat, cp and grep", err)
	}
	return nil
}
