package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// publishAddress is the only host address ports are published on: a
// published service is reachable from this machine, never from the network.
const publishAddress = "127.0.0.1"

// Published is a guest TCP port reachable on the host.
type Published struct {
	GuestPort   int    `json:"guest_port"`
	HostPort    int    `json:"host_port"`
	HostAddress string `json:"host_address"` // always "127.0.0.1"
}

type publication struct {
	info  Published
	ln    net.Listener
	conns closerSet
}

func (p *publication) close() {
	p.ln.Close()
	p.conns.closeAll()
}

// Publish makes guest TCP port guestPort reachable on 127.0.0.1:hostPort
// (0 lets the kernel pick). Each accepted connection is bridged to
// GuestAddr:guestPort through the stack.
func (s *Stack) Publish(guestPort, hostPort int) (Published, error) {
	if !s.policy.AllowsPublish() {
		return Published{}, errdefs.InvalidArgument("network_policy",
			"is %q, which does not publish ports; create the VM with network policy %q", s.policy, PolicyEgressPublish)
	}
	if guestPort < 1 || guestPort > 65535 {
		return Published{}, errdefs.InvalidArgument("guest_port", "%d is out of range [1, 65535]", guestPort)
	}
	if hostPort < 0 || hostPort > 65535 {
		return Published{}, errdefs.InvalidArgument("host_port", "%d is out of range [0, 65535]; 0 picks a free port", hostPort)
	}

	ln, err := net.Listen("tcp4", net.JoinHostPort(publishAddress, strconv.Itoa(hostPort)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return Published{}, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"host_port: %s:%d is already in use; pick another port, or 0 to let the system pick one", publishAddress, hostPort)
		}
		return Published{}, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"host_port: cannot listen on %s:%d", publishAddress, hostPort)
	}
	p := &publication{
		info: Published{GuestPort: guestPort, HostPort: ln.Addr().(*net.TCPAddr).Port, HostAddress: publishAddress},
		ln:   ln,
	}

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return Published{}, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeVMStopped, "the VM's network is shut down")
	}
	s.published[p.info.HostPort] = p
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.acceptPublished(p)
	}()
	s.log.Debug("published port", "guest_port", guestPort, "host", ln.Addr())
	return p.info, nil
}

// Unpublish stops publishing hostPort: it closes the listener and the live
// connections that came through it.
func (s *Stack) Unpublish(hostPort int) error {
	s.mu.Lock()
	p, ok := s.published[hostPort]
	delete(s.published, hostPort)
	s.mu.Unlock()
	if !ok {
		return errdefs.InvalidArgument("host_port", "%d is not published", hostPort)
	}
	p.close()
	return nil
}

// Published lists the published ports, sorted by host port.
func (s *Stack) Published() []Published {
	s.mu.Lock()
	out := make([]Published, 0, len(s.published))
	for _, p := range s.published {
		out = append(out, p.info)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Published) int { return a.HostPort - b.HostPort })
	return out
}

func (s *Stack) acceptPublished(p *publication) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// e.g. EMFILE: back off rather than spin, keep the port.
			s.log.Debug("accept on published port", "host_port", p.info.HostPort, "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !acquire(s.tcpSlots) {
			c.Close()
			continue
		}
		if !s.goTracked(func() {
			defer release(s.tcpSlots)
			s.forwardPublished(p, c)
		}) {
			release(s.tcpSlots)
			c.Close()
			return
		}
	}
}

// forwardPublished connects to the guest service (a closed guest port shows
// up as a reset host connection) and bridges the two.
func (s *Stack) forwardPublished(p *publication, host net.Conn) {
	ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
	guest, err := gonet.DialContextTCP(ctx, s.ns, tcpip.FullAddress{
		NIC:  nicID,
		Addr: toTCPIP(guestAddr),
		Port: uint16(p.info.GuestPort),
	}, ipv4.ProtocolNumber)
	cancel()
	if err != nil {
		s.log.Debug("published port: guest did not accept",
			"guest", netip.AddrPortFrom(guestAddr, uint16(p.info.GuestPort)), "err", err)
		if tc, ok := host.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, like a closed port would
		}
		host.Close()
		return
	}
	s.bridge(guest, host, &p.conns)
}
