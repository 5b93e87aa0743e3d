package supervisor

import (
	"slices"
	"sync"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
)

// maxPublished bounds the ports one service may publish.
const maxPublished = 16

// portTable is the ports published for each service, on the VM's network.
// Ports live as long as their service's start: a stop ends them, and so
// does the VM's end (the network closes every listener).
type portTable struct {
	net    *network.Stack // nil: the VM has no network
	policy network.Policy
	mu     sync.Mutex
	byName map[string][]network.Published
}

func newPortTable(st *network.Stack, policy network.Policy) *portTable {
	return &portTable{net: st, policy: policy, byName: map[string][]network.Published{}}
}

// publish publishes mappings for service name. On error nothing of this
// call is left published.
func (t *portTable) publish(name string, mappings []PortMapping) ([]network.Published, error) {
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
			t.closeAll(done)
			return nil, err
		}
		done = append(done, p)
	}
	t.mu.Lock()
	t.byName[name] = append(t.byName[name], done...)
	t.mu.Unlock()
	return done, nil
}

// release unpublishes ps, ports of name published by one call.
func (t *portTable) release(name string, ps []network.Published) {
	if len(ps) == 0 {
		return
	}
	t.mu.Lock()
	left := slices.DeleteFunc(t.byName[name], func(p network.Published) bool { return slices.Contains(ps, p) })
	if len(left) == 0 {
		delete(t.byName, name)
	} else {
		t.byName[name] = left
	}
	t.mu.Unlock()
	t.closeAll(ps)
}

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
