package pyro

import (
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
)

// brokeredOnly loads the secrets of a one-shot run or a low-level VM:
// they take brokered secrets only (the placeholder goes into every
// command's environment, which is harmless; a delivered value would need
// a workspace's secret_env).
func (c *Client) brokeredOnly(in []WorkspaceSecret, policy network.Policy) (secrets.Set, error) {
	for _, s := range in {
		if s.BrokerHosts == nil {
			return nil, errdefs.InvalidArgument("secrets", "secret %s is not brokered: runs and low-level VMs take brokered secrets only "+
				"(bind it to its hosts with --secret-broker %s=HOST, or use a workspace for secrets the guest may hold)", s.Name, s.Name)
		}
	}
	return c.loadSecrets(in, string(policy))
}

// brokeredEnv is the secret_env of a low-level VM's commands: every
// brokered secret under its own name (the value never enters the guest).
func brokeredEnv(infos []secrets.Info) map[string]string {
	m := map[string]string{}
	for _, s := range infos {
		if len(s.BrokerHosts) > 0 {
			m[s.Name] = ""
		}
	}
	return m
}
