package network

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/pyrovm/pyro/internal/errdefs"
)

const (
	nicID = 1

	// socketBuffer is asked for on both ends of the pair so that bursts of
	// frames are queued rather than dropped (the kernel may cap it).
	socketBuffer = 1 << 20

	maxTCPConns    = 256 // concurrent forwarded TCP connections
	maxTCPInFlight = 256 // concurrent TCP handshakes being dialed
	maxUDPFlows    = 256
	maxDNSQueries  = 64 // concurrent UDP DNS queries being relayed
	maxDNSTCPConns = 8  // concurrent DNS-over-TCP connections

	// Per-connection TCP buffers in the stack. gVisor's default, 1 MiB each
	// way, lets a guest pin 2 MiB per connection; this bounds it to 512 KiB.
	tcpBufferMin     = 4 << 10
	tcpBufferDefault = 128 << 10
	tcpBufferMax     = 256 << 10

	dialTimeout = 10 * time.Second
	// refusedAnswerGrace bounds how long the answers to a connection's
	// earlier requests may take once a later request was refused.
	refusedAnswerGrace = 30 * time.Second
	udpIdle            = 60 * time.Second
	dnsTimeout         = 5 * time.Second
	dnsTCPIdle         = 10 * time.Second
)

// Options configures New.
type Options struct {
	Policy Policy
	// Rules, when set, allow only what they name (see Rules); nil allows
	// whatever the fixed filter does. SetRules changes them later.
	Rules *Rules
	// Broker, when set, fills brokered secrets into requests to their
	// hosts (broker.go).
	Broker     *Broker
	Logger     *slog.Logger // nil = discard
	ResolvConf string       // default $PYRO_RESOLV_CONF, else /etc/resolv.conf

	hooks *testHooks // set only by this package's tests
}

// testHooks lets tests treat a loopback server as "outside".
type testHooks struct {
	// rewrite maps an allowed destination to the address actually dialed;
	// it runs after the policy check.
	rewrite func(netip.AddrPort) netip.AddrPort
	dnsPort uint16        // upstream DNS port instead of 53
	udpIdle time.Duration // instead of udpIdle
	// route replaces the kernel route check (routeReason) when set.
	route func(netip.Addr) string
}

// Stack is one VM's network: a user-mode TCP/IP stack on the pyro end of the
// socketpair, plus every host socket it opened on the guest's behalf.
type Stack struct {
	policy   Policy
	log      *slog.Logger
	hooks    testHooks
	hostEnd  *os.File
	link     stack.LinkEndpoint
	ns       *stack.Stack
	resolver *resolver

	ctx    context.Context // canceled by Close: aborts dials
	cancel context.CancelFunc

	tcpSlots    chan struct{}
	udpSlots    chan struct{}
	dnsSlots    chan struct{}
	dnsTCPSlots chan struct{}

	conns closerSet // every live socket, host or guest side

	allow   atomic.Pointer[allowlist] // nil: no egress rules
	answers *dnsCache                 // addresses allowed (or bound) names resolved to
	broker  *broker                   // nil: no brokered secrets
	blocked blockLog

	mu        sync.Mutex
	closing   bool
	wg        sync.WaitGroup // goroutines Close waits for
	published map[int]*publication

	closeOnce sync.Once
	closeErr  error
}

// ResolvConfEnv names a resolv.conf whose nameservers the guest's DNS relay
// uses instead of the host's /etc/resolv.conf.
const ResolvConfEnv = "PYRO_RESOLV_CONF"

// Info describes a VM's network for users (JSON in the VM's status).
type Info struct {
	Policy       Policy      `json:"network_policy"`
	GuestAddress string      `json:"guest_address"`
	Gateway      string      `json:"gateway"`
	DNS          []string    `json:"dns"`
	MAC          string      `json:"mac"`
	Published    []Published `json:"published_ports"`
	Rules        *Rules      `json:"egress_rules,omitempty"` // nil: no allow list
}

// Pair makes the socketpair that carries the guest's Ethernet frames. qemuEnd
// is for the VMM (pass it in exec.Cmd.ExtraFiles, which dups it into the
// child; close it in the parent after Start); hostEnd is for New. Both are
// close-on-exec.
func Pair() (hostEnd, qemuEnd *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "network: socketpair")
	}
	for _, fd := range fds {
		setSocketBuffers(fd)
	}
	return os.NewFile(uintptr(fds[0]), "pyro-net-host"), os.NewFile(uintptr(fds[1]), "pyro-net-qemu"), nil
}

// setSocketBuffers raises SO_SNDBUF/SO_RCVBUF, past net.core.[wr]mem_max if
// privileged. Best effort: a smaller buffer only costs retransmissions.
func setSocketBuffers(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	}
}

// New runs the network on hostEnd (the pyro side of the socketpair). It takes
// ownership of hostEnd, also on error.
func New(hostEnd *os.File, opts Options) (_ *Stack, err error) {
	if !opts.Policy.Enabled() {
		hostEnd.Close()
		return nil, errdefs.InvalidArgument("network_policy", "%q has no network; New needs %q or %q",
			opts.Policy, PolicyEgress, PolicyEgressPublish)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = os.Getenv(ResolvConfEnv)
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = "/etc/resolv.conf"
	}
	var al *allowlist
	if opts.Rules != nil {
		var err error
		if al, err = compile(*opts.Rules); err != nil {
			hostEnd.Close()
			return nil, err
		}
	}
	var br *broker
	if opts.Broker != nil {
		var err error
		if br, err = newBroker(opts.Broker); err != nil {
			hostEnd.Close()
			return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "network: secret broker")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{
		broker:      br,
		policy:      opts.Policy,
		log:         log.With("component", "network"),
		hostEnd:     hostEnd,
		ctx:         ctx,
		cancel:      cancel,
		tcpSlots:    make(chan struct{}, maxTCPConns),
		udpSlots:    make(chan struct{}, maxUDPFlows),
		dnsSlots:    make(chan struct{}, maxDNSQueries),
		dnsTCPSlots: make(chan struct{}, maxDNSTCPConns),
		published:   make(map[int]*publication),
		answers:     newDNSCache(),
	}
	s.allow.Store(al)
	if opts.hooks != nil {
		s.hooks = *opts.hooks
	}
	dnsPort := uint16(53)
	if s.hooks.dnsPort != 0 {
		dnsPort = s.hooks.dnsPort
	}
	s.resolver = &resolver{path: opts.ResolvConf, port: dnsPort}

	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.start(); err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "network: start the user-mode stack")
	}
	return s, nil
}

func (s *Stack) start() error {
	fd := int(s.hostEnd.Fd())
	linkAddr, err := tcpip.ParseMACAddress(gatewayMAC)
	if err != nil {
		return err
	}
	s.link, err = fdbased.New(&fdbased.Options{
		FDs:            []int{fd},
		MTU:            MTU,
		EthernetHeader: true,
		Address:        linkAddr,
		// One processor: packets are handled on the reading goroutine, no
		// extra goroutines per Stack.
		ProcessorsPerChannel: 1,
		ClosedFunc: func(e tcpip.Error) {
			// The VMM closed its end (VM gone) or the socket failed.
			s.log.Debug("link closed", "err", e)
		},
	})
	if err != nil {
		return err
	}

	s.ns = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	sack := tcpip.TCPSACKEnabled(true)
	if terr := s.ns.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); terr != nil {
		return fmt.Errorf("TCP SACK: %s", terr)
	}
	sndBuf := tcpip.TCPSendBufferSizeRangeOption{Min: tcpBufferMin, Default: tcpBufferDefault, Max: tcpBufferMax}
	if terr := s.ns.SetTransportProtocolOption(tcp.ProtocolNumber, &sndBuf); terr != nil {
		return fmt.Errorf("TCP send buffer: %s", terr)
	}
	rcvBuf := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpBufferMin, Default: tcpBufferDefault, Max: tcpBufferMax}
	if terr := s.ns.SetTransportProtocolOption(tcp.ProtocolNumber, &rcvBuf); terr != nil {
		return fmt.Errorf("TCP receive buffer: %s", terr)
	}

	// The NAT: connections and flows to addresses that are not ours end up
	// in these handlers, which apply the filter and bridge to host sockets.
	tcpFwd := tcp.NewForwarder(s.ns, 0, maxTCPInFlight, s.handleTCP)
	s.ns.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	// Every datagram counts as handled, refused ones too: the refusal is
	// logged, and the stack sends nothing back for it.
	udpFwd := udp.NewForwarder(s.ns, func(r *udp.ForwarderRequest) bool { s.handleUDP(r); return true })
	s.ns.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)

	if terr := s.ns.CreateNICWithOptions(nicID, newICMPFilter(s.link), stack.NICOptions{Name: "pyro0"}); terr != nil {
		return fmt.Errorf("create NIC: %s", terr)
	}
	if terr := s.ns.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: toTCPIP(gatewayAddr), PrefixLen: PrefixLen},
	}, stack.AddressProperties{}); terr != nil {
		return fmt.Errorf("add gateway address: %s", terr)
	}
	// Promiscuous: accept packets for any destination address, so that every
	// connection terminates here. Spoofing: reply from that address.
	if terr := s.ns.SetPromiscuousMode(nicID, true); terr != nil {
		return fmt.Errorf("promiscuous mode: %s", terr)
	}
	if terr := s.ns.SetSpoofing(nicID, true); terr != nil {
		return fmt.Errorf("spoofing: %s", terr)
	}
	s.ns.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}})

	return s.startDNS()
}

// Close stops the NIC and closes every host socket, listener and forwarded
// connection; it returns once all its goroutines have. Idempotent.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		pubs := s.published
		s.published = nil
		s.mu.Unlock()

		s.cancel() // aborts dials in progress
		if s.link != nil {
			stopReading(s.hostEnd, s.link) // no new frames, no new flows
		}
		for _, p := range pubs {
			p.close()
		}
		s.conns.closeAll()
		if s.ns != nil {
			s.ns.Close() // aborts every endpoint: unblocks gonet readers
		}
		s.wg.Wait()
		if s.ns != nil {
			s.ns.Wait() // waits for the stack's own workers, removes the NIC
		}
		if s.link != nil {
			closeStopFDs(s.link)
		}
		s.closeErr = s.hostEnd.Close()
	})
	return s.closeErr
}

// Info describes the network for users.
func (s *Stack) Info() Info {
	address, gateway, dns, mac, _ := GuestConfig()
	return Info{
		Policy:       s.policy,
		GuestAddress: address,
		Gateway:      gateway,
		DNS:          dns,
		MAC:          mac,
		Published:    s.Published(),
		Rules:        s.Rules(),
	}
}

// goTracked runs fn in a goroutine that Close waits for. It returns false,
// without running fn, once Close has begun.
func (s *Stack) goTracked(fn func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// enter counts the calling goroutine (one gVisor started) as tracked; the
// caller must call s.wg.Done. False once Close has begun.
func (s *Stack) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

// acquire takes a slot from a bounded pool without waiting.
func acquire(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func release(slots chan struct{}) { <-slots }

// closerSet holds live sockets so that Close (or Unpublish) can close them.
type closerSet struct {
	mu     sync.Mutex
	closed bool
	m      map[io.Closer]struct{}
}

// add registers c; false (c untouched) if the set is already closed.
func (cs *closerSet) add(c io.Closer) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	if cs.m == nil {
		cs.m = make(map[io.Closer]struct{})
	}
	cs.m[c] = struct{}{}
	return true
}

func (cs *closerSet) remove(c io.Closer) {
	cs.mu.Lock()
	delete(cs.m, c)
	cs.mu.Unlock()
}

func (cs *closerSet) closeAll() {
	cs.mu.Lock()
	cs.closed = true
	m := cs.m
	cs.m = nil
	cs.mu.Unlock()
	for c := range m {
		c.Close()
	}
}

func toTCPIP(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

func toAddrPort(a tcpip.Address, port uint16) netip.AddrPort {
	addr, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(addr.Unmap(), port)
}

// blockReason applies the cheap part of the filter to a guest-chosen
// destination: the static rules and the host interface list.
func (s *Stack) blockReason(dst netip.Addr) string { return blockReason(dst, defaultHostAddrs) }

// routeBlockReason asks the kernel about dst (see routeReason). It costs a
// netlink round trip, so it runs after a slot is taken, right before the dial.
func (s *Stack) routeBlockReason(dst netip.Addr) string {
	if s.hooks.route != nil {
		return s.hooks.route(dst)
	}
	return routeReason(dst)
}

// target is where an allowed destination is actually dialed.
func (s *Stack) target(dst netip.AddrPort) netip.AddrPort {
	if s.hooks.rewrite != nil {
		return s.hooks.rewrite(dst)
	}
	return dst
}

// stopReading ends the link's reading goroutine and waits for it. It must
// happen before the NIC is removed: at this gVisor version, removing the NIC
// holds the endpoint's lock while waiting for that goroutine, which takes the
// same lock to deliver a packet inline (ProcessorsPerChannel 1), so a frame
// arriving during Close would deadlock it.
//
// The reader only looks at its stop eventfd once readv says EAGAIN, which a
// peer that keeps the socket full (a flooding guest) can postpone forever.
// So both: SHUT_RD makes the peer's sends fail, the queue drains, readv gets
// EAGAIN, and the poll sees the eventfd. Either one alone can hang: the
// eventfd as said, SHUT_RD because a shut-down datagram socket polls readable
// while readv keeps returning EAGAIN.
func stopReading(f *os.File, ep stack.LinkEndpoint) {
	for _, efd := range stopFDs(ep) {
		_, _ = unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
	_ = unix.Shutdown(int(f.Fd()), unix.SHUT_RD)
	ep.Wait()
}

// closeStopFDs closes the eventfd fdbased creates for each reader to stop it.
// At this gVisor version nothing ever closes it (stopfd.StopFD has no Close),
// so without this every Stack would leak one descriptor. Call it only after
// the NIC is removed.
func closeStopFDs(ep stack.LinkEndpoint) {
	for _, fd := range stopFDs(ep) {
		unix.Close(fd)
	}
}

// stopFDs returns the eventfds of ep's readers (stopfd.StopFD.EFD). They sit
// in unexported fields, so each one is checked to really be an eventfd, and
// none is returned if the layout changed (the Close test's descriptor count
// and its deadline catch that).
func stopFDs(ep stack.LinkEndpoint) []int {
	v := reflect.ValueOf(ep)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	ds := v.Elem().FieldByName("inboundDispatchers")
	if !ds.IsValid() || ds.Kind() != reflect.Slice {
		return nil
	}
	var fds []int
	for i := range ds.Len() {
		d := ds.Index(i)
		for d.Kind() == reflect.Interface || d.Kind() == reflect.Pointer {
			if d.IsNil() {
				break
			}
			d = d.Elem()
		}
		if d.Kind() != reflect.Struct {
			continue
		}
		efd := d.FieldByName("EFD") // promoted from the embedded stopfd.StopFD
		if !efd.IsValid() || efd.Kind() != reflect.Int {
			continue
		}
		fd := int(efd.Int())
		if fd < 0 {
			continue
		}
		if link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil && link == "anon_inode:[eventfd]" {
			fds = append(fds, fd)
		}
	}
	return fds
}
