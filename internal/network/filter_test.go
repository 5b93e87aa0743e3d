package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func fakeHosts(prefixes ...string) *hostAddrs {
	var addrs []net.Addr
	for _, p := range prefixes {
		ip, n, err := net.ParseCIDR(p)
		if err != nil {
			panic(err)
		}
		n.IP = ip
		addrs = append(addrs, n)
	}
	return &hostAddrs{list: func() ([]net.Addr, error) { return addrs, nil }, ttl: time.Hour}
}

func TestBlockReason(t *testing.T) {
	hosts := fakeHosts("127.0.0.1/8", "192.168.1.5/24", "100.64.3.4/32", "2001:db8::5/64", "::1/128")
	tests := []struct {
		addr    string
		allowed bool
	}{
		// The host via loopback, in every spelling.
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		// Metadata services and other link-local.
		{"169.254.169.254", false},
		{"::ffff:169.254.169.254", false},
		{"169.254.1.1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		// Metadata services outside link-local space.
		{"168.63.129.16", false},
		{"100.100.100.200", false},
		{"::ffff:100.100.100.200", false},
		{"fd00:ec2::254", false},
		// Multicast and broadcast.
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"ff02::1", false},
		{"255.255.255.255", false},
		// The guest subnet, gateway included (DNS is served by a listener).
		{"10.0.2.2", false},
		{"10.0.2.15", false},
		{"10.0.2.0", false},
		{"10.0.2.255", false},
		// Host interface addresses, and the directed broadcast of their subnet.
		{"192.168.1.5", false},
		{"::ffff:192.168.1.5", false},
		{"192.168.1.255", false},
		{"100.64.3.4", false},
		{"2001:db8::5", false},
		// Everything else is outside, private ranges of other machines too.
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"192.168.1.1", true},
		{"192.168.50.7", true},
		{"10.0.3.1", true},
		{"10.0.1.255", true},
		{"172.16.0.1", true},
		{"100.64.3.5", true},
		{"100.100.100.201", true},
		{"168.63.129.17", true},
		{"2001:db8::6", true},
		{"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true},
	}
	for _, tt := range tests {
		addr := netip.MustParseAddr(tt.addr)
		reason := blockReason(addr, hosts)
		if got := reason == ""; got != tt.allowed {
			t.Errorf("%s: allowed = %v (reason %q), want %v", tt.addr, got, reason, tt.allowed)
		}
	}
	if blockReason(netip.Addr{}, hosts) == "" {
		t.Error("the zero Addr is allowed")
	}
	for _, a := range []string{"168.63.129.16", "100.100.100.200"} {
		if r := blockReason(netip.MustParseAddr(a), hosts); r != "metadata service" {
			t.Errorf("%s: reason %q, want %q", a, r, "metadata service")
		}
	}
}

func TestHostAddrsFailClosedAndRefresh(t *testing.T) {
	var addrs []net.Addr
	var err error = errors.New("netlink unavailable")
	h := &hostAddrs{list: func() ([]net.Addr, error) { return addrs, err }, ttl: 10 * time.Millisecond}
	eight := netip.MustParseAddr("8.8.8.8")
	if blockReason(eight, h) == "" {
		t.Fatal("allowed while the host interface list was never read")
	}

	err = nil
	time.Sleep(20 * time.Millisecond)
	if r := blockReason(eight, h); r != "" {
		t.Fatalf("8.8.8.8 blocked (%s) once the list is read", r)
	}

	// A new host address shows up after at most ttl.
	_, n, _ := net.ParseCIDR("203.0.113.0/24")
	n.IP = net.ParseIP("203.0.113.7")
	addrs = []net.Addr{n}
	newAddr := netip.MustParseAddr("203.0.113.7")
	time.Sleep(20 * time.Millisecond)
	if blockReason(newAddr, h) == "" {
		t.Fatal("a new host address is allowed after the refresh interval")
	}

	// A failed refresh keeps the last good list.
	err = errors.New("transient")
	time.Sleep(20 * time.Millisecond)
	if blockReason(newAddr, h) == "" || blockReason(eight, h) != "" {
		t.Fatal("a failed refresh dropped the last good list")
	}
}

// TestFilterRealHost runs the whole filter, kernel route check included,
// against this host's own interfaces and routes.
func TestFilterRealHost(t *testing.T) {
	check := func(a netip.Addr) string { return checkDestination(a, defaultHostAddrs, routeReason) }
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		p, ok := addrPrefix(a)
		if !ok {
			continue
		}
		if check(p.Addr()) == "" {
			t.Errorf("host interface address %s is allowed", p.Addr())
		}
	}
	for _, s := range []string{"127.0.0.1", "169.254.169.254", "10.0.2.2", "::ffff:127.0.0.1", "168.63.129.16"} {
		if check(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s is allowed", s)
		}
	}
	// Whether the internet is allowed depends on this host having a route.
	if _, err := netlink.RouteGet(net.ParseIP("8.8.8.8")); err == nil {
		if r := check(netip.MustParseAddr("8.8.8.8")); r != "" {
			t.Errorf("8.8.8.8 is blocked: %s", r)
		}
	}
}

func TestRouteReasonHostLoopback(t *testing.T) {
	// 127.0.0.1 is an RTN_LOCAL route in every network namespace.
	if r := routeReason(netip.MustParseAddr("127.0.0.1")); r == "" {
		t.Fatal("the kernel route check allows 127.0.0.1")
	}
}

func TestRouteTypeReason(t *testing.T) {
	for typ, allowed := range map[int]bool{
		unix.RTN_UNICAST:     true,
		unix.RTN_LOCAL:       false,
		unix.RTN_ANYCAST:     false,
		unix.RTN_BROADCAST:   false,
		unix.RTN_MULTICAST:   false,
		unix.RTN_BLACKHOLE:   false,
		unix.RTN_UNREACHABLE: false,
		unix.RTN_PROHIBIT:    false,
		unix.RTN_THROW:       false,
		unix.RTN_NAT:         false,
		unix.RTN_UNSPEC:      false,
		200:                  false,
	} {
		if got := routeTypeReason(typ) == ""; got != allowed {
			t.Errorf("route type %d: allowed = %v, want %v", typ, got, allowed)
		}
	}
	if routesReason(nil) == "" {
		t.Error("no route at all is allowed")
	}
	if routesReason([]netlink.Route{{Type: unix.RTN_UNICAST}, {Type: unix.RTN_LOCAL}}) == "" {
		t.Error("a local route among unicast ones is allowed")
	}
}

// TestRouteCheckNetns builds routes in a fresh network namespace and checks
// that the filter follows the kernel, not the interface list: an AnyIP local
// route (no interface has those addresses) and an address added after the
// list was read are blocked; an address routed out through a link is allowed.
func TestRouteCheckNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	type result struct {
		addr, reason string
	}
	results := make(chan []result, 1)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, now in another namespace, exits with
		// this goroutine instead of going back to the scheduler.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := setupTestRoutes(); err != nil {
			errc <- err
			return
		}
		hosts := fakeHosts() // the interface list read before any of this
		var out []result
		for _, a := range []string{
			"10.77.0.5", "10.77.0.200", // AnyIP local route
			"192.0.2.1",              // added to an interface "after" the list
			"192.0.2.255",            // that subnet's broadcast
			"198.18.0.1",             // blackhole
			"203.0.113.7", "8.8.8.8", // via the default route
		} {
			out = append(out, result{a, checkDestination(netip.MustParseAddr(a), hosts, routeReason)})
		}
		results <- out
	}()
	var got []result
	select {
	case err := <-errc:
		t.Fatal(err)
	case got = <-results:
	}
	want := map[string]bool{ // allowed?
		"10.77.0.5": false, "10.77.0.200": false, "192.0.2.1": false, "192.0.2.255": false,
		"198.18.0.1": false, "203.0.113.7": true, "8.8.8.8": true,
	}
	for _, r := range got {
		if allowed := r.reason == ""; allowed != want[r.addr] {
			t.Errorf("%s: allowed = %v (reason %q), want %v", r.addr, allowed, r.reason, want[r.addr])
		} else {
			t.Logf("%s: %q", r.addr, r.reason)
		}
	}
}

// setupTestRoutes runs inside the new namespace: lo up, 10.77.0.0/24 local
// on lo, 192.0.2.1/24 with a default route via 192.0.2.2 on one end of a veth
// pair (or on lo, if this kernel has no veth), a blackhole for 198.18.0.0/15.
func setupTestRoutes() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	if err := netlink.RouteAdd(&netlink.Route{
		LinkIndex: lo.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4(10, 77, 0, 0).To4(), Mask: net.CIDRMask(24, 32)},
		Type:      unix.RTN_LOCAL,
		Table:     unix.RT_TABLE_LOCAL,
		Scope:     netlink.SCOPE_HOST,
	}); err != nil {
		return fmt.Errorf("local route: %w", err)
	}
	link, err := testVeth()
	if err != nil {
		link = lo
	}
	addr, _ := netlink.ParseAddr("192.0.2.1/24")
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IPv4(192, 0, 2, 2).To4()}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	if err := netlink.RouteAdd(&netlink.Route{
		Dst:  &net.IPNet{IP: net.IPv4(198, 18, 0, 0).To4(), Mask: net.CIDRMask(15, 32)},
		Type: unix.RTN_BLACKHOLE,
	}); err != nil {
		return fmt.Errorf("blackhole route: %w", err)
	}
	return nil
}

// testVeth makes a veth pair, both ends up, and returns one end.
func testVeth() (netlink.Link, error) {
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pyro-t0"}, PeerName: "pyro-t1"}); err != nil {
		return nil, err
	}
	for _, name := range []string{"pyro-t1", "pyro-t0"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return nil, err
		}
	}
	return netlink.LinkByName("pyro-t0")
}

func TestBroadcastOf(t *testing.T) {
	for p, want := range map[string]string{
		"192.168.1.5/24": "192.168.1.255",
		"10.1.2.3/8":     "10.255.255.255",
		"172.16.5.9/30":  "172.16.5.11",
	} {
		if got := broadcastOf(netip.MustParsePrefix(p)); got.String() != want {
			t.Errorf("broadcastOf(%s) = %s, want %s", p, got, want)
		}
	}
}
