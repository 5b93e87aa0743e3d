package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spf13/pflag"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
)

// Help of the secret flags, shared by the commands that take them.
const (
	secretFlagHelp = "secret NAME=VALUE for the workspace (repeatable); the value is visible in the host's " +
		"process list while pyro runs, so prefer --secret-file"
	secretFileFlagHelp = "secret NAME=PATH whose value is the host file's content, as is (repeatable)"
	secretBrokerHelp   = "broker secret NAME (given by --secret or --secret-file) instead of delivering it: the guest gets a " +
		"placeholder, and the egress point puts the value into HTTP(S) request headers for these hosts only: NAME=HOST[,HOST] (repeatable; needs a network: --network-policy egress, or --network on run)"
)

// addSecretEnvFlag registers --secret-env on a command.
func addSecretEnvFlag(cmd *cobra.Command, into *[]string) {
	cmd.Flags().StringArrayVar(into, "secret-env", nil, cliexec.SecretEnvFlagHelp)
}

// parseSecrets turns --secret NAME=VALUE and --secret-file NAME=PATH into
// the SDK's secrets. A malformed flag is a usage error; names and values are
// checked by the SDK. The error never repeats a --secret argument: it may
// hold the value.
func parseSecrets(values, files []string) ([]pyro.WorkspaceSecret, error) {
	var out []pyro.WorkspaceSecret
	for i, kv := range values {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--secret #%d is malformed: expected NAME=VALUE (or --secret-file NAME=PATH)", i+1)
		}
		out = append(out, pyro.WorkspaceSecret{Name: name, Value: value})
	}
	for _, kv := range files {
		name, path, ok := strings.Cut(kv, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("--secret-file %q is malformed: expected NAME=PATH", kv)
		}
		out = append(out, pyro.WorkspaceSecret{Name: name, FilePath: path})
	}
	return out, nil
}

// applySecretBrokers binds the secrets named by --secret-broker
// NAME=HOST[,HOST] to their hosts. An empty host list is kept empty, for
// the SDK to refuse with its typed error.
func applySecretBrokers(sec []pyro.WorkspaceSecret, brokers []string) error {
	seen := map[string]bool{}
	for _, kv := range brokers {
		name, hosts, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return fmt.Errorf("--secret-broker %q is malformed: expected NAME=HOST[,HOST]", kv)
		}
		if seen[name] {
			return fmt.Errorf("--secret-broker names secret %s twice: list all its hosts in one flag, comma-separated", name)
		}
		seen[name] = true
		i := slices.IndexFunc(sec, func(s pyro.WorkspaceSecret) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("--secret-broker names secret %s, which no --secret or --secret-file gives", name)
		}
		sec[i].BrokerHosts = []string{}
		for _, h := range strings.Split(hosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				sec[i].BrokerHosts = append(sec[i].BrokerHosts, h)
			}
		}
	}
	return nil
}

// brokerFlags are the secret flags of `run` and `vm create`, which take
// brokered secrets only.
type brokerFlags struct{ values, files, brokers []string }

func (b *brokerFlags) add(f *pflag.FlagSet) {
	f.StringArrayVar(&b.values, "secret", nil, "secret NAME=VALUE to broker (needs --secret-broker NAME=HOST; repeatable)")
	f.StringArrayVar(&b.files, "secret-file", nil, "secret NAME=PATH to broker, the host file's content as is (repeatable)")
	f.StringArrayVar(&b.brokers, "secret-broker", nil, secretBrokerHelp)
}

// secrets is the SDK's secrets, or a usage error.
func (b *brokerFlags) secrets() ([]pyro.WorkspaceSecret, error) {
	sec, err := parseSecrets(b.values, b.files)
	if err != nil {
		return nil, err
	}
	return sec, applySecretBrokers(sec, b.brokers)
}
