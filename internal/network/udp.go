package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// handleUDP gets the first datagram of every guest UDP flow (4-tuple) that
// has no endpoint yet. It runs on the link's reading goroutine, so it must
// not block: it creates the guest-side endpoint (which takes this datagram
// and the flow's later ones) and leaves the host side to a goroutine.
func (s *Stack) handleUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	dst := toAddrPort(id.LocalAddress, id.LocalPort)
	if reason := s.blockReason(dst.Addr()); reason != "" {
		s.refuse("udp", dst, "", fixedReason(reason))
		return
	}
	if reason, checkName := s.egressCheck(dst); reason != "" || checkName && dst.Port() == 443 {
		if reason == "" {
			// QUIC hides the host name from a cheap check: clients fall back to TCP.
			reason = "UDP 443 (QUIC) to an address allowed by name: the host name cannot be checked; use TCP"
		}
		s.refuse("udp", dst, "", reason)
		return
	}
	if !acquire(s.udpSlots) {
		s.refuse("udp", dst, "", fmt.Sprintf("too many UDP flows at once (limit %d)", maxUDPFlows))
		return
	}
	if reason := s.routeBlockReason(dst.Addr()); reason != "" {
		release(s.udpSlots)
		s.refuse("udp", dst, "", fixedReason(reason))
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		release(s.udpSlots)
		s.log.Debug("udp endpoint", "dst", dst, "err", terr)
		return
	}
	guest := gonet.NewUDPConn(&wq, ep)
	if !s.goTracked(func() {
		defer release(s.udpSlots)
		s.udpFlow(guest, s.target(dst))
	}) {
		release(s.udpSlots)
		guest.Close()
	}
}

// udpFlow relays one flow through a connected host socket, so only the
// destination's replies come back, until it has been idle for udpIdle.
func (s *Stack) udpFlow(guest *gonet.UDPConn, target netip.AddrPort) {
	host, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		s.log.Debug("udp dial failed", "dst", target, "err", err)
		guest.Close()
		return
	}
	if !s.conns.add(guest) || !s.conns.add(host) {
		guest.Close()
		host.Close()
		return
	}
	defer func() {
		s.conns.remove(guest)
		s.conns.remove(host)
	}()

	idle := udpIdle
	if s.hooks.udpIdle > 0 {
		idle = s.hooks.udpIdle
	}
	var lastActive atomic.Int64
	lastActive.Store(time.Now().UnixNano())
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			guest.Close()
			host.Close()
		})
	}
	defer closeBoth()

	pump := func(dst, src net.Conn) {
		defer closeBoth()
		buf := make([]byte, 64<<10)
		for {
			_ = src.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() &&
					time.Since(time.Unix(0, lastActive.Load())) < idle {
					continue // the other direction kept the flow alive
				}
				return // idle, closed, or the destination is unreachable
			}
			lastActive.Store(time.Now().UnixNano())
			if _, err := dst.Write(buf[:n]); errors.Is(err, net.ErrClosed) {
				return
			} // other write errors: UDP is lossy, drop the datagram
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pump(host, guest)
	}()
	pump(guest, host)
	wg.Wait()
}
