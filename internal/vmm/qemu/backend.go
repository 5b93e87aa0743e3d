package qemu

import (
	"context"
	"os"
	"path/filepath"

	"github.com/pyrovm/pyro/internal/vmm"
)

// Backend is QEMU's microvm machine as a vmm.Backend.
type Backend struct{}

var (
	_ vmm.Backend     = Backend{}
	_ vmm.FloorBooter = Backend{}
)

// Name is the backend's name.
const Name = "qemu"

func (Backend) Name() string { return Name }

func (Backend) NewMachine(cfg vmm.Config) (vmm.Machine, error) {
	m, err := New(cfg)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return m, nil
}

func (Backend) DetectAccel(ctx context.Context, kernelPath, cacheFile string) vmm.AccelVerdict {
	return DetectAccel(ctx, kernelPath, cacheFile)
}

func (Backend) ExecutionMode(accel vmm.Accel) string { return ExecutionMode(accel) }

// Identity is QEMU's version, the digest of cfg's arguments, and under KVM
// ("-cpu host") the host CPU and kernel; under TCG the CPU model is QEMU's
// own.
func (Backend) Identity(ctx context.Context, cfg vmm.Config, cacheDir string) (vmm.Identity, error) {
	v, err := Version(ctx, filepath.Join(cacheDir, "qemu-version.json"))
	if err != nil {
		return vmm.Identity{}, err
	}
	id := vmm.Identity{Version: v, Machine: MachineDigest(cfg)}
	if cfg.Accel == vmm.AccelKVM {
		id.Host = HostID()
	}
	return id, nil
}

func (Backend) HostTools() []vmm.HostTool {
	return []vmm.HostTool{
		{Name: Binary, Package: "qemu-system-x86", Purpose: "runs the microVMs"},
		{Name: "qemu-img", Package: "qemu-utils", Purpose: "workspace disk overlays"},
	}
}

func (Backend) DiskFile() string { return DiskFile }

func (Backend) NewLayer(ctx context.Context, path, base string) error {
	return NewLayer(ctx, path, base)
}

func (Backend) BackingFiles(ctx context.Context, disk string) ([]string, error) {
	return BackingFiles(ctx, disk)
}

func (Backend) ExportRaw(ctx context.Context, disk string, out *os.File) error {
	return ExportRaw(ctx, disk, out)
}
