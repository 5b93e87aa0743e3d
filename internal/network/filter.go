package network

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostAddrsTTL bounds how stale the host interface list may be. The kernel
// route check (routeReason) is always fresh; this list is a second opinion.
const hostAddrsTTL = 2 * time.Second

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// metadataAddrs are cloud metadata services outside link-local space, which
// the link-local rule misses.
var metadataAddrs = map[netip.Addr]bool{
	netip.MustParseAddr("168.63.129.16"):   true, // Azure WireServer
	netip.MustParseAddr("100.100.100.200"): true, // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"):   true, // AWS IMDS over IPv6
}

// defaultHostAddrs is the host interface list shared by every Stack.
var defaultHostAddrs = &hostAddrs{list: net.InterfaceAddrs, ttl: hostAddrsTTL}

// checkDestination is the whole egress filter: the static rules and the host
// interface list (blockReason), then the kernel's own routing decision
// (routeReason). It returns why addr is blocked, or "" if it is allowed. The
// Stack runs the two parts separately (the second only once it has a slot).
func checkDestination(addr netip.Addr, hosts *hostAddrs, route func(netip.Addr) string) string {
	if r := blockReason(addr, hosts); r != "" {
		return r
	}
	return route(addr.Unmap().WithZone(""))
}

// blockReason applies the static rules and the host interface list.
func blockReason(addr netip.Addr, hosts *hostAddrs) string {
	// ::ffff:127.0.0.1 is 127.0.0.1 to the host kernel; zones do not matter.
	addr = addr.Unmap().WithZone("")
	switch {
	case !addr.IsValid():
		return "invalid address"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsUnspecified():
		return "unspecified address"
	case addr.Is4() && addr.As4()[0] == 0:
		// 0.0.0.0/8 "this network": Linux delivers 0.0.0.0 to the host itself.
		return "this-network address"
	case addr.IsLinkLocalUnicast():
		return "link-local (metadata service)"
	case metadataAddrs[addr]:
		return "metadata service"
	case addr.IsMulticast():
		return "multicast"
	case addr == limitedBroadcast:
		return "broadcast"
	case guestSubnet.Contains(addr):
		return "guest subnet"
	case hosts.contains(addr):
		return "address of the host"
	}
	return ""
}

// routeReason asks the kernel, at the moment of the dial, how it would route
// a packet to addr, and allows only an ordinary unicast route. This catches
// what the interface list cannot: local routes that are no interface address
// (e.g. "ip route add local 10.77.0.0/24 dev lo"), addresses added since the
// list was read, and directed broadcasts of any subnet. An error (no route,
// netlink unavailable) blocks: fail closed.
func routeReason(addr netip.Addr) string {
	routes, err := netlink.RouteGet(net.IP(addr.AsSlice()))
	if err != nil {
		return fmt.Sprintf("no route (%v)", err)
	}
	return routesReason(routes)
}

// routesReason classifies the answer of a route lookup.
func routesReason(routes []netlink.Route) string {
	if len(routes) == 0 {
		return "no route"
	}
	for _, r := range routes {
		if reason := routeTypeReason(r.Type); reason != "" {
			return reason
		}
	}
	return ""
}

func routeTypeReason(t int) string {
	switch t {
	case unix.RTN_UNICAST:
		return ""
	case unix.RTN_LOCAL, unix.RTN_ANYCAST:
		return "local route (the host itself)"
	case unix.RTN_BROADCAST:
		return "broadcast route"
	case unix.RTN_MULTICAST:
		return "multicast route"
	case unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
		return "unreachable route"
	}
	return fmt.Sprintf("route of type %d", t) // unknown: fail closed
}

// hostAddrs caches the set of addresses that reach the host: every address of
// every interface, plus the directed broadcast address of each IPv4 subnet
// (which the host receives too).
type hostAddrs struct {
	list func() ([]net.Addr, error)
	ttl  time.Duration

	mu      sync.Mutex
	fetched time.Time
	set     map[netip.Addr]struct{}
}

func (h *hostAddrs) contains(addr netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.set == nil || time.Since(h.fetched) >= h.ttl {
		h.refreshLocked()
	}
	if h.set == nil {
		return true // never read the interface list: fail closed
	}
	_, ok := h.set[addr]
	return ok
}

func (h *hostAddrs) refreshLocked() {
	h.fetched = time.Now()
	addrs, err := h.list()
	if err != nil {
		return // keep the previous list (or none: fail closed)
	}
	set := make(map[netip.Addr]struct{}, 2*len(addrs))
	for _, a := range addrs {
		p, ok := addrPrefix(a)
		if !ok {
			continue
		}
		set[p.Addr()] = struct{}{}
		if p.Addr().Is4() && p.Bits() <= 30 {
			set[broadcastOf(p)] = struct{}{}
		}
	}
	h.set = set
}

// addrPrefix converts an interface address (normally *net.IPNet) to a prefix.
func addrPrefix(a net.Addr) (netip.Prefix, bool) {
	var ip net.IP
	ones := -1
	switch v := a.(type) {
	case *net.IPNet:
		ip = v.IP
		ones, _ = v.Mask.Size()
	case *net.IPAddr:
		ip = v.IP
	default:
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	if ones < 0 || ones > addr.BitLen() {
		ones = addr.BitLen()
	}
	return netip.PrefixFrom(addr, ones), true
}

// broadcastOf returns the last address of an IPv4 prefix.
func broadcastOf(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (^uint32(0) >> p.Bits())
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}
