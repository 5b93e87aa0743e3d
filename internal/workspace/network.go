package workspace

import (
	"context"
	"errors"

	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// SetEgress changes a workspace's egress rules: change gets the current
// ones (nil: none) and returns the new ones, validated. A running
// workspace's network takes them at once; the record keeps them for every
// later boot. Either both change or neither does.
func (m *Manager) SetEgress(ctx context.Context, ref string, change func(*network.Rules) (*network.Rules, error)) (*Record, error) {
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	next, err := change(rec.Egress)
	if err != nil {
		return nil, err
	}
	if next, err = network.ValidateRules(network.Policy(rec.NetworkPolicy), next); err != nil {
		return nil, err
	}
	old := rec.Egress
	rec.State = m.liveState(ctx, rec)
	var sc *supervisor.Client
	if rec.State == StateRunning {
		sc = supervisor.Dial(p.Socket())
		defer sc.Close()
		if _, err := sc.SetNetworkRules(ctx, next); err != nil {
			return nil, err
		}
	}
	rec.Egress = next
	if err := store.WriteRecord(p, rec); err != nil {
		if sc != nil { // the record keeps the old rules: so must the VM
			_, rerr := sc.SetNetworkRules(context.WithoutCancel(ctx), old)
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return rec, nil
}

// NetworkLog returns a running workspace's newest refused names and
// connections (the log lives in its supervisor: a stop clears it).
func (m *Manager) NetworkLog(ctx context.Context, ref string) (*Record, *network.BlockedLog, error) {
	return viaSupervisor(ctx, m, ref, false, func(_ *Record, sc *supervisor.Client) (*network.BlockedLog, error) {
		return sc.NetworkLog(ctx)
	})
}
