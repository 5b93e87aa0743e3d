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

// The ports of a service that ended on its own close within a moment; those
// of a running service, and those of a service still starting, stay.
func TestPortsFollowTheirService(t *testing.T) {
	table := newPortTable(newTestStack(t, network.PolicyEgressPublish), network.PolicyEgressPublish)
	open := func() network.Published {
		ps, err := table.publish([]PortMapping{{GuestPort: 8000}})
		if err != nil || len(ps) != 1 {
			t.Fatalf("publish: %v %v", err, ps)
		}
		return ps[0]
	}
	web, gone, job, starting := open(), open(), open(), open()
	table.commit("web", []network.Published{web})
	table.commit("gone", []network.Published{gone})
	table.commit("job", []network.Published{job})

	var mu sync.Mutex
	states := map[string]string{"web": agentproto.ServiceReady, "job": agentproto.ServiceReady}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go table.watch(ctx, func(_ context.Context, name string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if st, ok := states[name]; ok {
			return st, nil
		}
		return "", errdefs.New(errdefs.ErrNotFound, "service_not_found", "no service %s", name)
	})
	mu.Lock()
	states["job"] = agentproto.ServiceExited
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
}

// Publishing needs the policy that allows it, and a free host port.
func TestPublishChecks(t *testing.T) {
	egress := newPortTable(newTestStack(t, network.PolicyEgress), network.PolicyEgress)
	if _, err := egress.publish([]PortMapping{{GuestPort: 80}}); err == nil {
		t.Error("published under policy egress")
	}
	off := newPortTable(nil, network.PolicyOff)
	if _, err := off.publish([]PortMapping{{GuestPort: 80}}); err == nil {
		t.Error("published without a network")
	}
	if ps, err := off.publish(nil); err != nil || ps != nil {
		t.Errorf("nothing to publish: %v %v", ps, err)
	}
	table := newPortTable(newTestStack(t, network.PolicyEgressPublish), network.PolicyEgressPublish)
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
