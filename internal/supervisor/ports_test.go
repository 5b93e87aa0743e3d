package supervisor

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
)

func newTestStack(t *testing.T, policy network.Policy) *network.Stack {
	t.Helper()
	host, vmm, err := network.Pair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vmm.Close() })
	st, err := network.New(host, network.Options{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// The ports of a service run that ended on its own close within a moment;
// those of a running service, of a service still starting, and of a newer
// run of a name stay.
func TestPortsFollowTheirService(t *testing.T) {
	table := newPortTable(newTestStack(t, network.PolicyEgressPublish), string(network.PolicyEgressPublish))
	open := func() network.Published {
		ps, err := table.publish([]PortMapping{{GuestPort: 8000}})
		if err != nil || len(ps) != 1 {
			t.Fatalf("publish: %v %v", err, ps)
		}
		return ps[0]
	}
	run := func(pid int) *agentproto.ServiceInfo {
		return &agentproto.ServiceInfo{Pid: pid, StartedAt: "2026-11-26T00:00:00Z", State: agentproto.ServiceReady}
	}
	web, gone, job, starting := open(), open(), open(), open()
	table.commit("web", run(10), []network.Published{web})
	table.commit("gone", run(11), []network.Published{gone})
	table.commit("job", run(12), []network.Published{job})

	var mu sync.Mutex
	services := map[string]*agentproto.ServiceInfo{"web": run(10), "job": run(12)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go table.watch(ctx, func(_ context.Context, name string) (*agentproto.ServiceInfo, error) {
		mu.Lock()
		defer mu.Unlock()
		if s, ok := services[name]; ok {
			c := *s
			return &c, nil
		}
		return nil, errdefs.New(errdefs.ErrNotFound, "service_not_found", "no service %s", name)
	})
	mu.Lock()
	services["job"].State = agentproto.ServiceExited
	mu.Unlock()

	deadline := time.Now().Add(5 * time.Second)
	for (listening(gone.HostPort) || listening(job.HostPort)) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if listening(gone.HostPort) || listening(job.HostPort) || len(table.of("job")) != 0 {
		t.Error("the ports of ended services are still open")
	}
	if !listening(web.HostPort) || len(table.of("web")) != 1 {
		t.Error("a running service lost its port")
	}
	if !listening(starting.HostPort) {
		t.Error("a starting service lost its port")
	}

	// web runs again (a new pid): its new port is its own, the old one goes.
	again := open()
	table.commit("web", run(20), []network.Published{again})
	mu.Lock()
	services["web"] = run(20)
	mu.Unlock()
	time.Sleep(2 * portWatchInterval)
	if listening(web.HostPort) || !listening(again.HostPort) || len(table.of("web")) != 1 {
		t.Errorf("after a new run: old open %v, new open %v, table %v", listening(web.HostPort), listening(again.HostPort), table.of("web"))
	}
}

// Publishing needs the policy that allows it, and a free host port.
func TestPublishChecks(t *testing.T) {
	egress := newPortTable(newTestStack(t, network.PolicyEgress), string(network.PolicyEgress))
	if _, err := egress.publish([]PortMapping{{GuestPort: 80}}); err == nil {
		t.Error("published under policy egress")
	}
	off := newPortTable(nil, "")
	if _, err := off.publish([]PortMapping{{GuestPort: 80}}); err == nil {
		t.Error("published without a network")
	}
	if ps, err := off.publish(nil); err != nil || ps != nil {
		t.Errorf("nothing to publish: %v %v", ps, err)
	}
	table := newPortTable(newTestStack(t, network.PolicyEgressPublish), string(network.PolicyEgressPublish))
	first, err := table.publish([]PortMapping{{GuestPort: 80}})
	if err != nil {
		t.Fatal(err)
	}
	// The second mapping's host port is taken: the first one of that call
	// must not stay open.
	_, err = table.publish([]PortMapping{{GuestPort: 81}, {GuestPort: 82, HostPort: first[0].HostPort}})
	if err == nil {
		t.Fatal("publish on a taken host port succeeded")
	}
	if len(table.net.Published()) != 1 {
		t.Errorf("a failed publish left ports open: %v", table.net.Published())
	}
}
