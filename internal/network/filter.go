package network

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"
)

// hostAddrsTTL bounds how stale the host interface list may be: addresses
// change (DHCP, VPNs, docker bridges), so it is re-read at most this often.
const hostAddrsTTL = 2 * time.Second

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// defaultHostAddrs is the host interface list shared by Allowed and every Stack.
var defaultHostAddrs = &hostAddrs{list: net.InterfaceAddrs, ttl: hostAddrsTTL}

// Allowed reports whether a guest may open a connection to addr. It is the
// whole egress policy: everything is allowed except the host itself and the
// addresses that reach the host or a metadata service without being "outside".
func Allowed(addr netip.Addr) bool {
	return blockReason(addr, defaultHostAddrs) == ""
}

// blockReason returns why addr is blocked, or "" if it is allowed.
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
