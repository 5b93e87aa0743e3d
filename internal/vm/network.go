package vm

import (
	"log/slog"
	"os"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
)

// startNetwork runs the VM's user-mode network before its VMM starts, so no
// frame of the guest's first packets is lost. vmmEnd goes to the VMM.
func startNetwork(policy network.Policy, rules *network.Rules, broker *network.Broker, log *slog.Logger) (_ *network.Stack, vmmEnd *os.File, err error) {
	hostEnd, vmmEnd, err := network.Pair()
	if err != nil {
		return nil, nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeVMMFailed, "network socketpair")
	}
	st, err := network.New(hostEnd, network.Options{Policy: policy, Rules: rules, Broker: broker, Logger: log})
	if err != nil {
		vmmEnd.Close()
		return nil, nil, err
	}
	return st, vmmEnd, nil
}

// guestNetConfig is what the guest agent configures for st (nil: nothing).
func guestNetConfig(st *network.Stack) *agentproto.NetConfig {
	if st == nil {
		return nil
	}
	addr, gw, dns, mac, mtu := network.GuestConfig()
	return &agentproto.NetConfig{MAC: mac, Address: addr, Gateway: gw, DNS: dns, MTU: mtu}
}
