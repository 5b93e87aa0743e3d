package vmm

import (
	"context"
	"os"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// FirstBackend is the backend of workspaces recorded before records named
// theirs: pyro had only this one then.
const FirstBackend = "qemu"

// Backend is one virtual machine monitor: everything pyro does that depends
// on which VMM runs the guests. It is chosen once per process
// (internal/vmm/backends) and passed down; nothing outside internal/vmm
// names a backend's binaries, arguments or disk format.
type Backend interface {
	// Name is the backend's stable name ("qemu"), as WithBackend and
	// PYRO_BACKEND spell it and a workspace's supervisor is told.
	Name() string
	// NewMachine prepares a machine; nothing runs until Start.
	NewMachine(cfg Config) (Machine, error)
	// DetectAccel decides between KVM and TCG for guests of kernelPath,
	// caching the verdict in cacheFile (per host; see AccelVerdict).
	DetectAccel(ctx context.Context, kernelPath, cacheFile string) AccelVerdict
	// ExecutionMode names how this backend runs guests under accel, e.g.
	// "guest_qemu_tcg" (results report it as execution_mode).
	ExecutionMode(accel Accel) string
	// Identity is what a saved machine of cfg depends on besides pyro's own
	// inputs (kernel, image, agent, size): the snapshot key takes it, so a
	// change here makes new snapshots by itself. cacheDir may hold what is
	// costly to ask each time (a version string).
	Identity(ctx context.Context, cfg Config, cacheDir string) (Identity, error)
	// HostTools are the host programs the backend runs, the VMM itself
	// first (doctor checks them).
	HostTools() []HostTool
	Disks
}

// Disks are a backend's disk operations. A machine's writable disk (a
// workspace's, a snapshot's) is one file in the backend's format, named
// DiskFile inside its directory, over a read-only raw environment image.
type Disks interface {
	// DiskFile is the file name of a writable disk, e.g. "disk.qcow2"; its
	// extension marks every disk file of this backend (layers, set-aside
	// copies).
	DiskFile() string
	// NewLayer creates, atomically, a writable disk at path whose reads
	// fall through to base, a disk of this format that never changes again
	// (forks share a source's disk this way, copying nothing).
	NewLayer(ctx context.Context, path, base string) error
	// BackingFiles lists the files disk reads through, nearest first,
	// without disk itself. It must work on the disk of a running machine.
	BackingFiles(ctx context.Context, disk string) ([]string, error)
	// ExportRaw writes the whole disk disk stands for (its layers and the
	// image below) as one raw image into out, an empty file opened for
	// writing. disk must not be in use by a machine.
	ExportRaw(ctx context.Context, disk string, out *os.File) error
}

// Identity is a backend's part of a snapshot key.
type Identity struct {
	// Version is the VMM's version string: saved state is only read back
	// by the same VMM build.
	Version string
	// Machine digests the machine cfg describes apart from file paths and
	// names: devices and their order, CPU, memory, kernel command line.
	Machine string
	// Host identifies the host CPU and kernel where the guest depends on
	// them (hardware acceleration); empty where it does not.
	Host string
}

// HostTool is a host program a backend needs.
type HostTool struct {
	Name    string // the executable, looked up on PATH
	Package string // the Debian package that provides it
	Purpose string
}

// AccelVerdict is the outcome of the accelerator probe, cached per host.
type AccelVerdict struct {
	Accel      Accel     `json:"accel"`
	KVMUsable  bool      `json:"kvm_usable"`
	Reason     string    `json:"reason"`
	HostKey    string    `json:"host_key"`
	ProbedAt   time.Time `json:"probed_at"`
	ProbeMs    int64     `json:"probe_ms,omitempty"`
	FromCache  bool      `json:"from_cache"`
	KernelPath string    `json:"-"`
	// GuestTSCKHz is, under TCG, the host TSC frequency guests are told
	// (Config.GuestTSCKHz); 0 with TSCReason saying why the host has none
	// fit for it. TSCChecked: measured (a verdict cached before was not).
	GuestTSCKHz int    `json:"guest_tsc_khz,omitempty"`
	TSCReason   string `json:"tsc_reason,omitempty"`
	TSCChecked  bool   `json:"tsc_checked,omitempty"`
}

// Optional capabilities: a Machine or a Backend may implement these;
// callers type-assert and answer Unsupported when it does not.

// StateSaver is a Machine that can save its state for a later Restore. The
// machine must have been made with Config.Saveable.
type StateSaver interface {
	// SaveState pauses the guest, writes its whole state to path and ends
	// the VMM. The root disk must be an overlay (DiskOverlay): it holds the
	// disk half of the saved machine and must be kept with the state file.
	SaveState(ctx context.Context, path string) error
}

// LiveSaver is a Machine that can save its state while it goes on running
// (a fork of a running workspace). The machine must have been made with
// Config.Saveable and a DiskOverlay root disk.
type LiveSaver interface {
	// ForkState pauses the guest, freezes its root disk as it is (the disk
	// file becomes the read-only backing of newTop, an empty disk NewLayer
	// made over it, where the machine writes from then on), writes the
	// whole state to path, calls swap (which links newTop where the disk
	// file was; newTop keeps its own name while the VMM runs) and lets the
	// guest go on. The state file with the frozen
	// disk is a machine that a Restore over a NewLayer of that disk brings
	// back. Once the disk is frozen, swap is called and the guest goes on
	// whatever else fails.
	ForkState(ctx context.Context, path, newTop string, swap func() error) error
}

// AgentDetacher is a Machine that can tell when the guest agent has seen
// its session end, so that a machine saved afterwards starts a fresh
// session with its next host (callers without it wait a fixed time).
type AgentDetacher interface {
	// DetachAgent runs closeHost (closing the host's end of the agent
	// channel) and returns once the guest's side has closed too.
	DetachAgent(ctx context.Context, closeHost func()) error
}

// LogTailer is a Machine whose VMM writes a log of its own (errors), apart
// from the guest's console.
type LogTailer interface {
	// LogTail returns the last n lines the VMM printed and, once it ended
	// by a signal, which one.
	LogTail(n int) string
}

// FloorBooter is a Backend that can boot an environment raw, with nothing
// of pyro's in it: the floor benchmarks compare pyro against.
type FloorBooter interface {
	// BootFloor boots cfg's kernel and image with init as the guest's first
	// process, ephemeral disk, no agent channel, until the VMM exits (the
	// guest's init ends, the kernel panics, the VMM quits). elapsed is the
	// VMM's wall time alone; console is what the guest printed.
	BootFloor(ctx context.Context, cfg Config, init string) (elapsed time.Duration, console string, err error)
}

// Unsupported is the error for a capability backend lacks (what says
// which, e.g. "saving a running machine").
func Unsupported(backend, what string) error {
	return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeVMMUnsupported,
		"the %s VMM backend does not support %s: pick a backend that does (PYRO_BACKEND)", backend, what)
}
