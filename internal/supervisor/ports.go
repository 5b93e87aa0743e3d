package supervisor

import (
	"context"
	"fmt"
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

// portWatchInterval is how soon the ports of a service that ended on its
// own (exited, or failed later) are closed.
const portWatchInterval = time.Second

// portTable is the ports published for each service, on the VM's network.
// Ports belong to one run of a service (an instance: a name can be started
// again once its service ended) and live as long as it runs: a stop ends
// them, so does the service's own end (watch) and the VM's end (the network
// closes every listener).
type portTable struct {
	net    *network.Stack // nil: the VM has no network
	policy network.Policy
	mu     sync.Mutex
	byName map[string]servicePorts
}

type servicePorts struct {
	instance string
	ports    []network.Published
}

// instanceOf names one run of a service.
func instanceOf(info *agentproto.ServiceInfo) string {
	return fmt.Sprintf("%d@%s", info.Pid, info.StartedAt)
}

// newPortTable takes the policy as recorded ("" is off).
func newPortTable(st *network.Stack, recorded string) *portTable {
	policy, err := network.ParsePolicy(recorded)
	if err != nil {
		policy = network.PolicyOff
	}
	return &portTable{net: st, policy: policy, byName: map[string]servicePorts{}}
}

// publish opens the host side of mappings for a service about to start.
// They belong to no service until commit, so watch leaves them alone while
// the service starts. On error nothing of this call stays open.
func (t *portTable) publish(mappings []PortMapping) ([]network.Published, error) {
	if len(mappings) == 0 {
		return nil, nil
	}
	if t.net == nil || !t.policy.AllowsPublish() {
		return nil, errdefs.InvalidArgument("published_ports",
			"this workspace's network policy is %s; publishing ports needs a workspace created with network policy %s",
			t.policy, network.PolicyEgressPublish)
	}
	if len(mappings) > maxPublished {
		return nil, errdefs.InvalidArgument("published_ports", "at most %d ports per service", maxPublished)
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

// commit gives ps, opened by publish, to the run of service name that just
// got ready. Ports of an earlier run of that name are closed: it has ended,
// or the agent would not have started the name again.
func (t *portTable) commit(name string, info *agentproto.ServiceInfo, ps []network.Published) {
	t.mu.Lock()
	old := t.byName[name]
	delete(t.byName, name)
	if len(ps) > 0 {
		t.byName[name] = servicePorts{instance: instanceOf(info), ports: ps}
	}
	t.mu.Unlock()
	t.closeAll(old.ports)
}

// release closes ports opened by publish whose service did not start.
func (t *portTable) release(ps []network.Published) { t.closeAll(ps) }

// unpublishAll ends every port of service name.
func (t *portTable) unpublishAll(name string) {
	t.mu.Lock()
	old := t.byName[name]
	delete(t.byName, name)
	t.mu.Unlock()
	t.closeAll(old.ports)
}

// unpublishRun ends the ports of service name if they still belong to run
// instance (a newer run of the name keeps its own).
func (t *portTable) unpublishRun(name, instance string) {
	t.mu.Lock()
	sp, ok := t.byName[name]
	if !ok || sp.instance != instance {
		t.mu.Unlock()
		return
	}
	delete(t.byName, name)
	t.mu.Unlock()
	t.closeAll(sp.ports)
}

// of lists the ports published for service name.
func (t *portTable) of(name string) []network.Published {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.byName[name].ports)
}

func (t *portTable) closeAll(ps []network.Published) {
	for _, p := range ps {
		_ = t.net.Unpublish(p.HostPort) // one that is already gone is gone
	}
}

// watch closes the ports of service runs that are no longer running, until
// ctx ends. status asks the guest about a service.
func (t *portTable) watch(ctx context.Context, status func(ctx context.Context, name string) (*agentproto.ServiceInfo, error)) {
	tick := time.NewTicker(portWatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		owners := maps.Clone(t.byName)
		t.mu.Unlock()
		for name, sp := range owners {
			info, err := status(ctx, name)
			if ctx.Err() != nil {
				return
			}
			if errdefs.IsNotFound(err) || err == nil && (instanceOf(info) != sp.instance || !running(info.State)) {
				t.unpublishRun(name, sp.instance)
			}
		}
	}
}

func running(state string) bool {
	return state == agentproto.ServiceStarting || state == agentproto.ServiceReady
}
