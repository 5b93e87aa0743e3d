//go:build linux

package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Limits of a NetConfig.
const (
	minMTU = 576
	maxMTU = 9000
	// maxNameservers is what the resolver reads (glibc's MAXNS, musl's too).
	maxNameservers = 3
)

// Package variables so that tests can redirect them.
var (
	// resolvConfPath is the file a NetConfig with DNS replaces.
	resolvConfPath = "/etc/resolv.conf"
	// linkWait is how long to wait for the interface to appear: the
	// virtio-net driver may still be probing when the first hello arrives.
	linkWait = 2 * time.Second
	// linkPoll is the interval of that wait.
	linkPoll = 20 * time.Millisecond
)

// netConfig is a validated agentproto.NetConfig.
type netConfig struct {
	mac     net.HardwareAddr
	addr    netip.Prefix // the host address and its prefix length, IPv4
	gateway netip.Addr   // IPv4, inside addr's subnet
	dns     []netip.Addr
	mtu     int // 0: leave as is
}

// parseNetConfig validates c without touching the system.
func parseNetConfig(c *agentproto.NetConfig) (*netConfig, error) {
	var n netConfig
	mac, err := net.ParseMAC(c.MAC)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("network: bad MAC %q: want an Ethernet address like 52:54:00:12:34:56", c.MAC)
	}
	n.mac = mac
	p, err := netip.ParsePrefix(c.Address)
	if err != nil {
		return nil, fmt.Errorf("network: bad address %q: want IPv4 CIDR like 10.0.2.15/24", c.Address)
	}
	if !p.Addr().Is4() {
		return nil, fmt.Errorf("network: address %q is not IPv4", c.Address)
	}
	if p.Bits() < 1 || p.Bits() > 31 {
		return nil, fmt.Errorf("network: address %q: prefix length must be 1..31", c.Address)
	}
	if !usableUnicast(p.Addr()) {
		return nil, fmt.Errorf("network: address %q is not a unicast address", c.Address)
	}
	n.addr = p
	gw, err := netip.ParseAddr(c.Gateway)
	if err != nil || !gw.Is4() {
		return nil, fmt.Errorf("network: bad gateway %q: want an IPv4 address", c.Gateway)
	}
	if !usableUnicast(gw) {
		return nil, fmt.Errorf("network: gateway %s is not a unicast address", gw)
	}
	if !p.Contains(gw) {
		return nil, fmt.Errorf("network: gateway %s is outside %s", gw, p.Masked())
	}
	if gw == p.Addr() {
		return nil, fmt.Errorf("network: gateway %s is the guest's own address", gw)
	}
	n.gateway = gw
	if len(c.DNS) > maxNameservers {
		return nil, fmt.Errorf("network: %d DNS servers, at most %d", len(c.DNS), maxNameservers)
	}
	for _, s := range c.DNS {
		a, err := netip.ParseAddr(s)
		// A zone could carry anything, newlines included, into resolv.conf.
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("network: bad DNS server %q: want an IP address", s)
		}
		n.dns = append(n.dns, a.Unmap())
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > maxMTU) {
		return nil, fmt.Errorf("network: MTU %d: want 0 (leave as is) or %d..%d", c.MTU, minMTU, maxMTU)
	}
	n.mtu = c.MTU
	return &n, nil
}

func usableUnicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// applyNetwork configures the interface with n.mac. Every step is
// idempotent: a guest restored from a memory snapshot gets the same config
// again, and applying it to an interface that already has it changes nothing.
func applyNetwork(n *netConfig) error {
	link, err := waitLink(n.mac, linkWait)
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	if n.mtu != 0 && link.Attrs().MTU != n.mtu {
		if err := netlink.LinkSetMTU(link, n.mtu); err != nil {
			return fmt.Errorf("network: set MTU %d on %s: %w", n.mtu, name, err)
		}
	}
	if err := setOnlyAddr(link, n.addr); err != nil {
		return fmt.Errorf("network: set address %s on %s: %w", n.addr, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network: bring %s up: %w", name, err)
	}
	def := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Gw:        net.IP(n.gateway.AsSlice()),
	}
	if err := netlink.RouteReplace(def); err != nil {
		return fmt.Errorf("network: default route via %s on %s: %w", n.gateway, name, err)
	}
	if len(n.dns) > 0 {
		if err := writeResolvConf(resolvConfPath, n.dns); err != nil {
			return fmt.Errorf("network: write %s: %w", resolvConfPath, err)
		}
	}
	return nil
}

// waitLink returns the link whose hardware address is mac, polling until
// it appears or wait has passed. Should several links share the address
// (a VLAN or macvlan on top of the device, say), the one with the lowest
// index wins: the device itself, created first.
func waitLink(mac net.HardwareAddr, wait time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(wait)
	for {
		links, err := netlink.LinkList()
		// A dump interrupted by a concurrent change may be incomplete: poll again.
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("network: list interfaces: %w", err)
		}
		var found netlink.Link
		for _, l := range links {
			if bytes.Equal(l.Attrs().HardwareAddr, mac) && (found == nil || l.Attrs().Index < found.Attrs().Index) {
				found = l
			}
		}
		if found != nil {
			return found, nil
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("network: no interface with MAC %s (waited %v)", mac, wait)
		}
		time.Sleep(linkPoll)
	}
}

// setOnlyAddr leaves p as the link's only IPv4 address. Other addresses go
// first: removing a primary address also removes the secondaries of its
// subnet, which p would be if added beside it. IPv6 addresses (the kernel's
// link-local one) are left alone.
func setOnlyAddr(link netlink.Link, p netip.Prefix) error {
	want := &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 32)}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	// A dump interrupted by a concurrent change may be incomplete: retry.
	for i := 0; i < 5 && errors.Is(err, netlink.ErrDumpInterrupted); i++ {
		addrs, err = netlink.AddrList(link, netlink.FAMILY_V4)
	}
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet != nil && a.IP.Equal(want.IP) && bytes.Equal(a.Mask, want.Mask) && a.Peer == nil {
			continue
		}
		// EADDRNOTAVAIL: it went away on its own, a secondary removed with its primary.
		if err := netlink.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s: %w", a.IPNet, err)
		}
	}
	return netlink.AddrReplace(link, &netlink.Addr{IPNet: want})
}

// resolvConf is the content written for servers.
func resolvConf(servers []netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by pyro-agent from the VM's network configuration.\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return b.Bytes()
}

// writeResolvConf replaces path atomically (a temporary file in the same
// directory, then rename) with mode 0644. When path is a symlink, dangling
// or not, the link itself is replaced: images often point it at a resolver
// daemon's file that does not exist in the VM. A regular file that already
// holds the content is left untouched.
func writeResolvConf(path string, servers []netip.Addr) error {
	content := resolvConf(servers)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == 0o644 {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			return nil
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".resolv.conf.pyro-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
