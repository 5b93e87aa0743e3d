package pyro

import (
	"slices"

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

// oneShotBroker makes the network broker of a VM that lives for one run:
// its CA exists only in this process's memory.
func oneShotBroker(set secrets.Set) (*network.Broker, error) {
	if len(set) == 0 {
		return nil, nil
	}
	var hosts []string
	for _, s := range set {
		hosts = append(hosts, s.BrokerHosts...)
	}
	slices.Sort(hosts)
	pem, err := network.NewBrokerCA("run", slices.Compact(hosts))
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "make the run's secret broker CA")
	}
	ca, err := network.ParseBrokerCA(pem)
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "make the run's secret broker CA")
	}
	b := &network.Broker{CA: ca}
	for _, s := range set {
		b.Secrets = append(b.Secrets, network.BrokeredSecret{Name: s.Name, Placeholder: s.Placeholder, Value: s.Value, Hosts: s.BrokerHosts})
	}
	return b, nil
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

// placeholderEnv maps every secret of set to its own variable name (for
// set.Env): a one-shot command gets every placeholder.
func placeholderEnv(set secrets.Set) map[string]string {
	m := map[string]string{}
	for _, s := range set {
		m[s.Name] = ""
	}
	return m
}
