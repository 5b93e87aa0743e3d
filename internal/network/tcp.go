package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/pyrovm/pyro/internal/netutil"
)

// handleTCP gets every guest SYN to an address without a listener in the
// stack (gVisor runs it in a new goroutine). It dials the real destination
// first and completes the guest's handshake only if that worked, so the
// guest sees "connection refused" exactly when the destination refuses, and
// an instant RST when the filter says no.
func (s *Stack) handleTCP(r *tcp.ForwarderRequest) {
	if !s.enter() {
		r.Complete(false) // closing: the NIC is going away, send nothing
		return
	}
	defer s.wg.Done()

	id := r.ID()
	dst := toAddrPort(id.LocalAddress, id.LocalPort)
	if reason := s.blockReason(dst.Addr()); reason != "" {
		s.refuse("tcp", dst, "", fixedReason(reason))
		r.Complete(true)
		return
	}
	reason, checkName := s.egressCheck(dst)
	if reason != "" {
		s.refuse("tcp", dst, "", reason)
		r.Complete(true)
		return
	}
	if !acquire(s.tcpSlots) {
		s.refuse("tcp", dst, "", fmt.Sprintf("too many connections at once (limit %d)", maxTCPConns))
		r.Complete(true)
		return
	}
	defer release(s.tcpSlots)
	if reason := s.routeBlockReason(dst.Addr()); reason != "" {
		s.refuse("tcp", dst, "", fixedReason(reason))
		r.Complete(true)
		return
	}
	if checkName || s.broker != nil && brokerPort(dst.Port()) {
		s.handleNamedTCP(r, dst, checkName)
		return
	}

	ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
	var d net.Dialer
	host, err := d.DialContext(ctx, "tcp", s.target(dst).String())
	cancel()
	if err != nil {
		s.log.Debug("dial failed", "proto", "tcp", "dst", dst, "err", err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		s.log.Debug("guest handshake failed", "dst", dst, "err", terr)
		r.Complete(true)
		host.Close()
		return
	}
	r.Complete(false)
	s.bridge(gonet.NewTCPConn(&wq, ep), host)
}

// handleNamedTCP serves a connection whose first bytes decide what
// happens: one that the rules allow only for the host it names (checkName),
// or one that may carry a brokered secret. The guest's handshake completes
// first, its first bytes are read (sniff) and checked, and only then is the
// destination dialed and sent them, or the broker serves the connection. A
// refusal resets the guest's connection.
func (s *Stack) handleNamedTCP(r *tcp.ForwarderRequest, dst netip.AddrPort, checkName bool) {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		s.log.Debug("guest handshake failed", "dst", dst, "err", terr)
		r.Complete(true)
		return
	}
	r.Complete(false)
	guest := gonet.NewTCPConn(&wq, ep)
	if !s.conns.add(guest) {
		ep.Abort()
		guest.Close()
		return
	}
	sn, err := sniff(guest, sniffWait(dst.Port()))
	s.conns.remove(guest)
	if checkName {
		if reason := nameReason(s.allow.Load(), dst.Port(), sn, err); reason != "" {
			s.refuse("tcp", dst, sn.name, reason)
			ep.Abort() // a reset, not a clean end
			guest.Close()
			return
		}
	}
	if s.broker != nil && err == nil && s.broker.binds(sn.name) {
		switch sn.kind {
		case sniffTLS:
			s.serveBrokerTLS(guest, dst, sn)
			return
		case sniffHTTP:
			s.serveBroker(&netutil.PrefixConn{Conn: guest, Prefix: sn.data}, dst, "")
			return
		}
	}
	guardHTTP := sn.kind == sniffHTTP && err == nil && (checkName || s.broker != nil)
	ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
	var d net.Dialer
	host, err := d.DialContext(ctx, "tcp", s.target(dst).String())
	cancel()
	if err == nil && !guardHTTP {
		_, err = host.Write(sn.data)
		if err != nil {
			host.Close()
		}
	}
	if err != nil {
		s.log.Debug("dial failed", "proto", "tcp", "dst", dst, "err", err)
		ep.Abort()
		guest.Close()
		return
	}
	if guardHTTP { // every request of the connection names its host
		s.bridgeWith(guest, host, func(w io.Writer, r io.Reader) error {
			err := s.guardHTTP(w, io.MultiReader(bytes.NewReader(sn.data), r), dst)
			if errors.Is(err, errHTTPRefusedLater) {
				// End the requests here, as a half-close: the server answers
				// those it got (a pipelining guest gets them, then EOF),
				// within a bound.
				_ = host.SetReadDeadline(time.Now().Add(refusedAnswerGrace))
				return nil
			}
			return err
		})
		return
	}
	s.bridge(guest, host)
}

type closeWriter interface{ CloseWrite() error }

// bridge copies between two stream connections until both directions are
// done, passing half-closes through, then closes both. Both are registered in
// s.conns and in extra (a publication's set), so either can tear them down.
func (s *Stack) bridge(a, b net.Conn, extra ...*closerSet) {
	s.bridgeWith(a, b, copyStream, extra...)
}

// copyStream is the plain way one direction of a bridge copies.
func copyStream(dst io.Writer, src io.Reader) error {
	_, err := io.Copy(dst, src)
	return err
}

// bridgeWith is bridge with aToB copying a to b (e.g. a filter).
func (s *Stack) bridgeWith(a, b net.Conn, aToB func(dst io.Writer, src io.Reader) error, extra ...*closerSet) {
	sets := append([]*closerSet{&s.conns}, extra...)
	for _, set := range sets {
		if !set.add(a) || !set.add(b) {
			for _, set := range sets {
				set.remove(a)
				set.remove(b)
			}
			a.Close()
			b.Close()
			return
		}
	}
	defer func() {
		for _, set := range sets {
			set.remove(a)
			set.remove(b)
		}
	}()

	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	defer closeBoth()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		halfCopy(b, a, closeBoth, aToB)
	}()
	halfCopy(a, b, closeBoth, copyStream)
	wg.Wait()
}

// halfCopy copies src to dst. At EOF it half-closes dst so the peer sees the
// end of the stream while the other direction goes on; on an error (reset,
// closed) it tears the whole connection down.
func halfCopy(dst, src net.Conn, closeBoth func(), copyFn func(io.Writer, io.Reader) error) {
	if err := copyFn(dst, src); err != nil {
		closeBoth()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	closeBoth()
}
