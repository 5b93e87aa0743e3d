package network

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
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

func TestAllowedRealInterfaces(t *testing.T) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		p, ok := addrPrefix(a)
		if !ok {
			continue
		}
		if Allowed(p.Addr()) {
			t.Errorf("host interface address %s is allowed", p.Addr())
		}
	}
	for _, s := range []string{"127.0.0.1", "169.254.169.254", "10.0.2.2", "::ffff:127.0.0.1"} {
		if Allowed(netip.MustParseAddr(s)) {
			t.Errorf("%s is allowed", s)
		}
	}
	if !Allowed(netip.MustParseAddr("8.8.8.8")) {
		t.Error("8.8.8.8 is blocked")
	}
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
