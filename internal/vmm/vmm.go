// Package vmm declares what pyro needs from a virtual machine monitor: a
// Backend (everything machine-specific: machines, accelerator, snapshot
// identity, disks) and the Machine it starts. Backends live in packages
// under internal/vmm (qemu; Firecracker's shape is in docs/architecture.md);
// internal/vmm/backends picks one, and everything else sees only this
// package.
package vmm

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Accel is the execution mode of a backend.
type Accel string

const (
	AccelKVM Accel = "kvm"
	AccelTCG Accel = "tcg"
)

// DiskMode says what happens to writes to the root disk.
type DiskMode int

const (
	// DiskEphemeral discards all writes when the VM ends (one-shot runs).
	DiskEphemeral DiskMode = iota
	// DiskOverlay keeps writes in a copy-on-write overlay file (workspaces).
	DiskOverlay
)

// Config is what to boot. It is plain data; Validate checks it.
type Config struct {
	ID          string   // short id, used in process names and paths
	RuntimeDir  string   // per-VM directory for sockets, logs, overlays; removed on Close
	KernelPath  string   // uncompressed vmlinux (PVH)
	RootfsPath  string   // read-only environment image (ext4)
	DiskMode    DiskMode //
	OverlayPath string   // DiskOverlay: the writable disk (Disks.DiskFile format), created over RootfsPath if missing
	VCPUs       int      //
	MemMiB      int      //
	Accel       Accel    //
	KernelArgs  []string // appended to the backend's defaults
	// GuestTSCKHz, under TCG, is the host TSC frequency (AccelVerdict):
	// the guest keeps time with the TSC QEMU passes through instead of
	// a jiffies clock that loses time under load. 0: the guest calibrates.
	GuestTSCKHz int
	// Saveable asks for a machine whose state can be saved while it runs
	// (StateSaver): a backend may need a control channel for that, kept in
	// RuntimeDir. It is not part of the machine's identity.
	Saveable bool
	// Network, when set, gives the guest one network device.
	Network *NetDevice
	// Restore, when set, starts the machine from a saved memory state instead
	// of booting the kernel. Every other field must match the machine that was
	// saved (same devices in the same order); DiskMode and OverlayPath are
	// ignored: the disk is Restore.DiskPath.
	Restore *Restore
}

// NetDevice is a virtio-net device whose Ethernet frames travel as datagrams
// on File, the VMM's end of a socketpair. The host end runs the user-mode
// network (internal/network). File is not part of the machine's identity.
type NetDevice struct {
	MAC  string
	File *os.File
}

// Restore names the files of a saved machine: the device and memory state
// and the root disk as it was when the state was saved (a disk in the
// backend's format, Disks.DiskFile).
type Restore struct {
	StatePath string
	DiskPath  string
	// Writable makes the restored machine write to DiskPath itself (kept,
	// honouring the guest's flushes, like an overlay disk). DiskPath must then
	// be a private copy of the saved disk: the machine owns it from now on.
	// Otherwise DiskPath is never written: writes go to a throw-away overlay.
	Writable bool
}

// Limits of what pyro accepts; the SDK validates requests against these.
const (
	MinVCPUs  = 1
	MaxVCPUs  = 8
	MinMemMiB = 256
	MaxMemMiB = 16384
)

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return errdefs.InvalidArgument("id", "must not be empty")
	case c.RuntimeDir == "":
		return errdefs.InvalidArgument("runtime_dir", "must not be empty")
	case c.KernelPath == "" || c.RootfsPath == "":
		return errdefs.InvalidArgument("environment", "kernel and rootfs paths are required")
	case c.VCPUs < MinVCPUs || c.VCPUs > MaxVCPUs:
		return errdefs.InvalidArgument("vcpu_count", "%d is out of range [%d, %d]", c.VCPUs, MinVCPUs, MaxVCPUs)
	case c.MemMiB < MinMemMiB || c.MemMiB > MaxMemMiB:
		return errdefs.InvalidArgument("mem_mib", "%d is out of range [%d, %d]", c.MemMiB, MinMemMiB, MaxMemMiB)
	case c.DiskMode == DiskOverlay && c.OverlayPath == "" && c.Restore == nil:
		return errdefs.InvalidArgument("overlay_path", "required for an overlay disk")
	case c.Restore != nil && (c.Restore.StatePath == "" || c.Restore.DiskPath == ""):
		return errdefs.InvalidArgument("restore", "state and disk paths are required")
	case c.Network != nil && (c.Network.File == nil || c.Network.MAC == ""):
		return errdefs.InvalidArgument("network", "a network device needs a MAC address and its socket")
	case c.Accel != AccelKVM && c.Accel != AccelTCG:
		return errdefs.InvalidArgument("accel", "unknown accelerator %q", c.Accel)
	case c.GuestTSCKHz < 0:
		return errdefs.InvalidArgument("guest_tsc_khz", "%d is negative", c.GuestTSCKHz)
	}
	return nil
}

// Machine is one running VM.
type Machine interface {
	// Start launches the VMM and returns the connection to the guest agent's
	// channel. It does not wait for the guest to boot: the caller's first agent
	// call does. ctx bounds the launch only, never the VM's life.
	Start(ctx context.Context) (net.Conn, error)
	// Exited is closed once the VMM process has ended.
	Exited() <-chan struct{}
	// Wait blocks until the VMM has ended or ctx is done.
	Wait(ctx context.Context) error
	// Kill stops the VMM at once (SIGKILL) and waits for it.
	Kill() error
	// Stop waits up to grace for the VMM to end by itself (after the guest
	// powered off), then TERM, then KILL.
	Stop(grace time.Duration) error
	// ConsoleTail returns the last n lines the guest printed on its console.
	ConsoleTail(n int) string
	// Pid is the VMM's process id (0 before Start).
	Pid() int
	// ExecutionMode names the backend and accelerator, e.g. "guest_qemu_tcg".
	ExecutionMode() string
	// Close kills the VMM if it still runs and removes the runtime dir. Idempotent.
	Close() error
}

// BootFailed builds the error for a guest that did not come up.
func BootFailed(reason string, consoleTail string) error {
	msg := fmt.Sprintf("the guest did not boot: %s", reason)
	if consoleTail != "" {
		msg += "\n--- guest console (last lines) ---\n" + consoleTail
	}
	msg += "\nrun \"pyro doctor\" to check the host"
	return errdefs.New(errdefs.ErrUnavailable, errdefs.CodeBootFailed, "%s", msg)
}
