package network

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// icmpFilter drops ICMP the guest sends to anyone but the gateway. In
// promiscuous mode gVisor's ipv4 answers an echo request to any address, so
// without it "ping 169.254.169.254" would succeed and mislead; ICMP is not
// forwarded anyway. A link-level wrapper rather than netstack iptables, which
// would turn on connection tracking for every packet and start a reaper timer
// that nothing stops when the stack closes.
type icmpFilter struct {
	nested.Endpoint
}

var gatewayTCPIP = toTCPIP(gatewayAddr)

func newICMPFilter(child stack.LinkEndpoint) *icmpFilter {
	e := &icmpFilter{}
	e.Endpoint.Init(child, e)
	return e
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (e *icmpFilter) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if proto == header.IPv4ProtocolNumber {
		// Too short to tell: let ipv4 reject it as malformed.
		if h, ok := pkt.Data().PullUp(header.IPv4MinimumSize); ok {
			ip := header.IPv4(h)
			if ip.Protocol() == uint8(header.ICMPv4ProtocolNumber) && ip.DestinationAddress() != gatewayTCPIP {
				return
			}
		}
	}
	e.Endpoint.DeliverNetworkPacket(proto, pkt)
}
