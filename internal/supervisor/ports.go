package supervisor

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
)

// maxPublished bounds the ports one service may publish.
const maxPublished = 16

// portTable is the ports published for each service, on the VM's network.
// Ports live as long as their service runs: a stop ends them, so does the
// service's own end (watch) and the VM's end (the network closes every
// listener).
type portTable struct {
	net    *network.Stack // nil: the VM has no network
	policy network.Policy
	mu     sync.Mutex
	byName map[string][]network.Published
}

func newPortTable(st *network.Stack, policy network.Policy) *portTable {
	return &portTable{net: st, policy: policy, byName: map[string][]network.Published{}}
}

// publish opens the host side of mappings for a service about to start.
// They belong to no service until commit, so watch leaves them alone while
// the service starts. On error nothing of this call stays open.
func (t *portTable) publish(mappings []PortMapping) ([]network.Published, error) {
	if len(mappings) == 0 {
		return nil, nil
	}
	if t.net == nil || !t.policy.AllowsPublish() {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInvalidArgument,
			"publish: this workspace's network policy is %q; publishing ports needs a workspace created with network policy %s", policyName(t.policy), network.PolicyEgressPublish)
	}
	if len(mappings) > maxPublished {
		return nil, errdefs.InvalidArgument("publish", "at most %d ports per service", maxPublished)
	}
	var done []network.Published
	for _, m := range mappings {
		p, err := t.net.Publish(m.GuestPort, m.HostPort)
		if err != nil {
			t.release(done)
			return nil, err
		}
		done = append(done, p)
	}
	return done, nil
}

// commit gives ps, opened by publish, to the service name that is now ready.
func (t *portTable) commit(name string, ps []network.Published) {
	if len(ps) == 0 {
		return
	}
	t.mu.Lock()
	t.byName[name] = append(t.byName[name], ps...)
	t.mu.Unlock()
}

// release closes ports opened by publish whose service did not start.
func (t *portTable) release(ps []network.Published) { t.closeAll(ps) }

// unpublishAll ends every port of service name.
func (t *portTable) unpublishAll(name string) {
	t.mu.Lock()
	ps := t.byName[name]
	delete(t.byName, name)
	t.mu.Unlock()
	t.closeAll(ps)
}

// of lists the ports published for service name.
func (t *portTable) of(name string) []network.Published {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.byName[name])
}

func (t *portTable) closeAll(ps []network.Published) {
	for _, p := range ps {
		_ = t.net.Unpublish(p.HostPort) // one that is already gone is gone
	}
}

func policyName(p network.Policy) string {
	if p == "" {
		return string(network.PolicyOff)
	}
	return string(p)
}

// portWatchInterval is how soon the ports of a service that ended on its
// own (exited, or failed later) are closed.
const portWatchInterval = time.Second

// watch closes the ports of services that are no longer running, until ctx
// ends. state reports a service's state ("" with an error when the guest
// does not know it).
func (t *portTable) watch(ctx context.Context, state func(ctx context.Context, name string) (string, error)) {
	tick := time.NewTicker(portWatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		names := slices.Collect(maps.Keys(t.byName))
		t.mu.Unlock()
		for _, name := range names {
			st, err := state(ctx, name)
			if ctx.Err() != nil {
				return
			}
			if errdefs.IsNotFound(err) || (err == nil && st != agentproto.ServiceStarting && st != agentproto.ServiceReady) {
				t.unpublishAll(name)
			}
		}
	}
}
