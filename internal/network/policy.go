package network

import (
	"net/netip"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Policy says what network a VM gets.
type Policy string

const (
	// PolicyOff: no network device at all (the caller does not call New).
	PolicyOff Policy = "off"
	// PolicyEgress: outbound NAT to anywhere but the host itself.
	PolicyEgress Policy = "egress"
	// PolicyEgressPublish: egress, and guest services may publish TCP ports
	// on host 127.0.0.1.
	PolicyEgressPublish Policy = "egress+published-ports"
)

// ParsePolicy parses a user-given policy; "" means PolicyOff.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return PolicyOff, nil
	case PolicyOff, PolicyEgress, PolicyEgressPublish:
		return p, nil
	}
	return "", errdefs.InvalidArgument("network_policy", "%q is not a network policy; use one of %q, %q, %q",
		s, PolicyOff, PolicyEgress, PolicyEgressPublish)
}

// Enabled reports whether the VM gets a network device.
func (p Policy) Enabled() bool { return p == PolicyEgress || p == PolicyEgressPublish }

// AllowsPublish reports whether guest ports may be published on the host.
func (p Policy) AllowsPublish() bool { return p == PolicyEgressPublish }

// The fixed private L2 every VM sees. Each VM has its own stack, so every
// guest can use the same addresses.
const (
	GuestAddr = "10.0.2.15"         // the guest's address
	PrefixLen = 24                  // guest subnet prefix length
	Gateway   = "10.0.2.2"          // the stack's own address: default route and DNS
	GuestMAC  = "52:54:00:12:34:56" // the guest NIC's MAC (give it to QEMU)
	MTU       = 1500
)

// gatewayMAC is the stack's own MAC (what QEMU's slirp uses for its gateway).
const gatewayMAC = "52:55:0a:00:02:02"

var (
	guestAddr   = netip.MustParseAddr(GuestAddr)
	gatewayAddr = netip.MustParseAddr(Gateway)
	guestSubnet = netip.PrefixFrom(guestAddr, PrefixLen).Masked()
)

// GuestConfig is what the guest agent must configure on its NIC.
func GuestConfig() (address, gateway string, dns []string, mac string, mtu int) {
	return netip.PrefixFrom(guestAddr, PrefixLen).String(), Gateway, []string{Gateway}, GuestMAC, MTU
}
