// Package vm boots one guest (VMM + agent channel) and tears it down. It owns
// the per-VM runtime directory and its owner record, so that a VM left behind
// by a crashed pyro process is found and reaped by the next one.
package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/vmm"
)

// Named timeouts.
const DefaultBootTimeout = 120 * time.Second // TCG on a loaded 2-core host is slow

// Spec is what to boot.
type Spec struct {
	KernelPath  string
	RootfsPath  string
	VCPUs       int
	MemMiB      int
	Accel       vmm.Accel
	GuestTSCKHz int           // vmm.Config.GuestTSCKHz: the host TSC under TCG
	BootTimeout time.Duration // 0 = DefaultBootTimeout
	Kind        string        // "run", "workspace": shown in owner records
	// OverlayPath, when set, keeps disk writes in this overlay (the
	// backend's disk format) over RootfsPath (created if missing) instead of discarding them. It lives
	// outside the VM dir, so it survives Close.
	OverlayPath string
	// Network is the guest's network policy; off (or "") gives it no network
	// device at all.
	Network network.Policy
	// Egress, when set, allows only what these rules name (see
	// network.Rules); the supervisor may change them while the VM runs.
	Egress *network.Rules
	// Broker, when set, fills brokered secrets into requests to their
	// hosts at the egress point (network.Broker).
	Broker *network.Broker
	// Snapshot, when set, restores this saved machine instead of booting the
	// kernel. The other fields must be those the snapshot was saved with
	// (see Save); OverlayPath is ignored: writes go to a throw-away overlay,
	// or with Snapshot.Writable to Snapshot.DiskPath (a private copy of the
	// saved disk, kept after Close like an overlay).
	Snapshot *vmm.Restore
	// Pausable makes the machine saveable (vmm.Config.Saveable), so that
	// Pause can save it while it runs (workspaces: pause, fork).
	Pausable bool
	// MachineID, when set, replaces the guest's /etc/machine-id (where the
	// image has one) in the hello after boot or restore: a fork's identity.
	MachineID string
}

// RestoreTimeout bounds a restore up to the agent's answer. A restore
// answers in a fraction of a second; one that takes this long is broken, and
// the caller boots cold instead.
const RestoreTimeout = 20 * time.Second

// config is the VMM configuration of spec. Save and a restore of what it
// saved get the same one, but for the disk (and Save's Saveable).
func (spec Spec) config(id, dir string) vmm.Config {
	disk := vmm.DiskEphemeral
	if spec.OverlayPath != "" {
		disk = vmm.DiskOverlay
	}
	cfg := vmm.Config{
		ID: id, RuntimeDir: dir, KernelPath: spec.KernelPath, RootfsPath: spec.RootfsPath,
		DiskMode: disk, OverlayPath: spec.OverlayPath, VCPUs: spec.VCPUs, MemMiB: spec.MemMiB, Accel: spec.Accel,
		GuestTSCKHz: spec.GuestTSCKHz, Restore: spec.Snapshot,
	}
	if spec.Network.Enabled() {
		cfg.Network = &vmm.NetDevice{MAC: network.GuestMAC} // boot adds the socket
	}
	return cfg
}

// Phases of a boot or restore, in order.
type Phases struct {
	VMMStart time.Duration // the VMM started and connected the agent channel
	Agent    time.Duration // the guest agent's first answer (a restore: the state loaded, the guest awake, the session's handshake)
	Sync     time.Duration // the second hello: clock, entropy, network, machine id
}

// VM is a booted guest with a live agent.
type VM struct {
	ID    string
	Dir   string
	Hello *agentproto.Hello
	// Phases split BootDur: where a boot or restore spends its time.
	Phases  Phases
	BootDur time.Duration

	machine vmm.Machine
	backend string // the backend's name, for errors
	agent   *agentclient.Client
	net     *network.Stack // nil without a network
	log     *slog.Logger

	machineID string // for the hello: Spec.MachineID

	closeOnce sync.Once
	closeErr  error
}

// NewMachineID returns a fresh machine id (/etc/machine-id's format: 128
// random bits as 32 lowercase hex digits).
func NewMachineID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Boot starts a VM of backend b under root (the state dir's vms/ directory)
// and waits for its agent. On any error everything acquired so far is
// released. ctx bounds the boot only; the VM lives until Close.
func Boot(ctx context.Context, b vmm.Backend, root string, spec Spec, log *slog.Logger) (_ *VM, err error) {
	return boot(ctx, b, root, spec, spec.Pausable, log)
}

// boot is Boot; saveable makes a machine whose state Save can save.
func boot(ctx context.Context, b vmm.Backend, root string, spec Spec, saveable bool, log *slog.Logger) (_ *VM, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := NewID()
	dir := filepath.Join(root, id)
	bootTimeout := spec.BootTimeout
	if bootTimeout == 0 {
		bootTimeout = DefaultBootTimeout
	}
	cfg := spec.config(id, dir)
	cfg.Saveable = saveable
	v := &VM{ID: id, Dir: dir, backend: b.Name(), log: log.With("vm", id), machineID: spec.MachineID}
	var netEnd *os.File // the VMM's end of the network socketpair, closed here once the VMM has it
	if cfg.Network != nil {
		if v.net, netEnd, err = startNetwork(spec.Network, spec.Egress, spec.Broker, v.log); err != nil {
			return nil, err
		}
		defer netEnd.Close()
		cfg.Network.File = netEnd
	}
	m, err := b.NewMachine(cfg)
	if err != nil {
		if v.net != nil {
			v.net.Close()
		}
		return nil, err
	}
	v.machine = m
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	if err := writeOwner(dir, owner{VMID: id, Kind: spec.Kind}); err != nil {
		return nil, err
	}
	start := time.Now()
	conn, err := m.Start(ctx)
	if err != nil {
		return nil, err
	}
	v.Phases.VMMStart = time.Since(start)
	v.log.Debug("vmm started", "pid", m.Pid(), "ms", v.Phases.VMMStart.Milliseconds())
	if err := updateOwnerVMM(dir, m.Pid()); err != nil {
		conn.Close()
		return nil, err
	}
	v.agent, err = agentclient.New(conn)
	if err != nil {
		conn.Close()
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeVMMFailed, "agent session")
	}
	if _, err = v.waitAgent(ctx, bootTimeout); err != nil {
		return nil, err
	}
	v.Phases.Agent = time.Since(start) - v.Phases.VMMStart
	if v.Hello, err = v.syncGuest(ctx); err != nil {
		return nil, err
	}
	v.Phases.Sync = time.Since(start) - v.Phases.VMMStart - v.Phases.Agent
	v.BootDur = time.Since(start)
	v.log.Debug("booted", "boot_ms", v.BootDur.Milliseconds(), "kernel", v.Hello.KernelRelease, "restored", spec.Snapshot != nil)
	return v, nil
}

// syncGuest gives the guest the host's clock and fresh entropy (a second
// hello, right after the first answered: the first may wait in the channel
// for the whole boot, so a time sent with it would be stale by that much).
// A restored guest needs it: it wakes with the clock of the moment it was
// saved and the random state every restore of that snapshot shares. A cold
// boot gets it too: its clock came from the RTC, to the second.
func (v *VM) syncGuest(ctx context.Context) (*agentproto.Hello, error) {
	req := &agentproto.HelloRequest{Entropy: make([]byte, helloEntropy)}
	if _, err := rand.Read(req.Entropy); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	req.Network = guestNetConfig(v.net)
	req.MachineID = v.machineID
	req.HostTimeUnixNano = time.Now().UnixNano()
	h, err := v.agent.HelloWith(sctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		what := "the host's clock and entropy"
		if req.Network != nil {
			what = "the host's clock, entropy and network configuration"
		}
		return nil, vmm.BootFailed("the guest agent did not take "+what+": "+err.Error(), v.machine.ConsoleTail(25))
	}
	return h, nil
}

// Guest sync parameters.
const (
	helloEntropy = 64               // bytes of crypto/rand entropy per boot
	syncTimeout  = 30 * time.Second // the agent is up: this is one round trip
)

// waitAgent waits for the agent's hello, the VMM's death, or the deadline.
func (v *VM) waitAgent(ctx context.Context, timeout time.Duration) (*agentproto.Hello, error) {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		h   *agentproto.Hello
		err error
	}
	ch := make(chan result, 1)
	go func() {
		h, err := v.agent.Hello(hctx)
		ch <- result{h, err}
	}()
	select {
	case r := <-ch:
		if r.err == nil {
			return r.h, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var e *errdefs.Error
		if errors.As(r.err, &e) && e.Code == errdefs.CodeAgentProtocol {
			return nil, r.err
		}
		if hctx.Err() != nil {
			return nil, vmm.BootFailed("no answer from the guest agent within "+timeout.String(), v.machine.ConsoleTail(25))
		}
		// The channel died: most likely the VMM exited. Give it a moment so
		// the console holds the guest's last words.
		select {
		case <-v.machine.Exited():
		case <-time.After(time.Second):
		}
		return nil, vmm.BootFailed("the guest stopped before its agent answered", v.machine.ConsoleTail(25))
	case <-v.machine.Exited():
		return nil, vmm.BootFailed("the VM exited during boot"+v.vmmSays(), v.machine.ConsoleTail(25))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// vmmSays is ": " and the VMM's last error lines, if it printed any.
func (v *VM) vmmSays() string {
	if l, ok := v.machine.(vmm.LogTailer); ok {
		if tail := l.LogTail(5); tail != "" {
			return ": " + strings.ReplaceAll(tail, "\n", "; ")
		}
	}
	return ""
}

// Network is the VM's user-mode network, or nil when it has none.
func (v *VM) Network() *network.Stack { return v.net }

// VMMPid is the VMM's process id.
func (v *VM) VMMPid() int { return v.machine.Pid() }

// Agent is the VM's agent client.
func (v *VM) Agent() *agentclient.Client { return v.agent }

// Exited is closed when the VMM process ends.
func (v *VM) Exited() <-chan struct{} { return v.machine.Exited() }

// ExecutionMode names backend and accelerator.
func (v *VM) ExecutionMode() string { return v.machine.ExecutionMode() }

// ConsoleTail returns the guest console's last n lines.
func (v *VM) ConsoleTail(n int) string { return v.machine.ConsoleTail(n) }

// Shutdown flushes the guest's filesystems and powers it off, waiting up to
// grace for the VMM to end before killing it, then removes the VM dir. Use it
// when the disk outlives the VM.
func (v *VM) Shutdown(ctx context.Context, grace time.Duration) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := v.agent.Sync(sctx); err != nil {
		v.log.Warn("guest sync before power-off failed", "err", err)
	}
	_ = v.agent.Shutdown(sctx) // the guest may power off before it answers
	stopErr := v.machine.Stop(grace)
	return errors.Join(stopErr, v.Close())
}

// Close destroys the VM at once and removes all its host state. Disposable
// VMs need no graceful power-off: their disk writes are discarded anyway.
func (v *VM) Close() error {
	v.closeOnce.Do(func() {
		var errs []error
		if v.agent != nil {
			v.agent.Close()
		}
		errs = append(errs, v.machine.Close())
		if v.net != nil {
			errs = append(errs, v.net.Close())
		}
		v.closeErr = errors.Join(errs...)
	})
	return v.closeErr
}
