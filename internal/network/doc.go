// Package network gives a microVM a private, policed network.
//
// QEMU gets one end of an AF_UNIX SOCK_DGRAM socketpair as
// "-netdev socket,fd=N": every datagram is one Ethernet frame. pyro keeps the
// other end and runs a user-mode TCP/IP stack (gVisor netstack) on it. That
// stack owns the guest's gateway (10.0.2.2) and, in promiscuous mode,
// terminates every TCP connection and UDP flow the guest opens, whatever its
// destination. For each one it asks the destination filter, and only then
// opens an ordinary host socket to the real destination and copies bytes
// between the two: outbound NAT done in user space.
//
// Why a user-mode stack rather than a tap device with nftables: the host
// process sees and decides every single destination (the filter in filter.go
// is plain Go and unit-tested), it needs no root and no capabilities, and
// there is no kernel state (tap devices, bridges, firewall rules) to leak or
// clean up when pyro crashes: the network dies with the process.
//
// The guest never reaches the host itself (loopback, any address of any host
// interface or local route, the guest subnet) nor metadata services
// (169.254.169.254 and the like): before each dial the kernel is asked how it
// would route the destination. DNS at the gateway is relayed, plain queries
// only, to the host's resolvers, which is the one way loopback (e.g.
// systemd-resolved on 127.0.0.53) is used. Only the gateway answers ping.
// With the egress+published-ports policy, guest TCP ports can also be
// published on host 127.0.0.1 (publish.go).
package network
