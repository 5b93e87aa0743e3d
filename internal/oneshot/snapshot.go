package oneshot

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/snapshot"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/vmm/qemu"
)

// One-shot runs, and workspaces when created, start from a memory snapshot of
// their machine (environment, size, accelerator) booted once to its agent:
// see docs/architecture.md, "Snapshot restore".

// snapshotWarmup runs once in the guest before it is saved, so that the
// shell every run starts (and what it reads) is in the guest's page cache,
// and the agent holds the login environment (see agent/login.go).
const snapshotWarmup = "true"

// Snapshots is the store of saved machines.
func (r *Runner) Snapshots() *snapshot.Store { return snapshot.NewStore(r.CacheDir) }

// Boot boots the VM of a one-shot run: restored from the snapshot of
// its machine (made first if missing), else cold. A snapshot that cannot be
// made or restored never fails the run: it is logged and removed, and the
// run boots cold. The VM's BootDur covers a failed restore too.
func (r *Runner) Boot(ctx context.Context, e *env.Environment, spec vm.Spec) (*vm.VM, error) {
	snap := r.Snapshot(ctx, e, spec)
	start := time.Now()
	if snap != nil {
		rs := spec
		rs.Snapshot = &vmm.Restore{StatePath: snap.StatePath, DiskPath: snap.DiskPath}
		rs.BootTimeout = vm.RestoreTimeout
		v, err := vm.Boot(ctx, r.VMsDir, rs, r.Log)
		if err == nil {
			r.Log.Debug("vm restored from snapshot", "vm", v.ID, "snapshot", snap.Meta.ID, "boot_ms", v.BootDur.Milliseconds())
			return v, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		r.Invalidate(snap, err)
	}
	v, err := vm.Boot(ctx, r.VMsDir, spec, r.Log)
	if err != nil {
		return nil, err
	}
	v.BootDur = time.Since(start)
	return v, nil
}

// Invalidate removes snap after a restore from it failed (cause);
// the caller boots cold.
func (r *Runner) Invalidate(snap *snapshot.Snapshot, cause error) {
	r.Log.Warn("restoring a snapshot failed: removing it and booting cold", "snapshot", snap.Dir, "err", cause)
	if err := r.Snapshots().Invalidate(snap, cause); err != nil {
		r.Log.Warn("removing a failed snapshot", "snapshot", snap.Dir, "err", err)
	}
}

// Snapshot returns the valid snapshot for spec's machine, making it when
// missing, or nil when there is none to use (never an error: the run then
// boots cold).
func (r *Runner) Snapshot(ctx context.Context, e *env.Environment, spec vm.Spec) *snapshot.Snapshot {
	store := r.Snapshots()
	key, err := r.SnapshotKey(ctx, e, spec)
	if err != nil {
		r.Log.Warn("no snapshot for this machine", "err", err)
		return nil
	}
	snap, err := store.Lookup(key, e.RootfsPath)
	if err == nil {
		return snap
	}
	r.Log.Debug("no usable snapshot", "reason", err)
	r.report(ctx, "snapshot", "preparing a fast-start snapshot of "+e.Manifest.Name+" (once per environment and machine size)")
	start := time.Now()
	snap, err = store.Create(ctx, key, e.RootfsPath, func(ctx context.Context, dir string) error {
		return vm.Save(ctx, r.VMsDir, spec, filepath.Join(dir, snapshot.DiskFile), filepath.Join(dir, snapshot.StateFile), snapshotWarmup, r.Log)
	})
	switch {
	case err == nil:
		r.Log.Info("snapshot created", "snapshot", snap.Dir, "ms", time.Since(start).Milliseconds(), "state_bytes", snap.Meta.StateSize)
		return snap
	case errors.Is(err, snapshot.ErrBusy), errors.Is(err, snapshot.ErrRecentlyFailed):
		r.Log.Debug("booting cold", "reason", err)
	case ctx.Err() == nil:
		r.Log.Warn("creating a snapshot failed: booting cold", "err", err)
	}
	return nil
}

// Lookup returns the valid snapshot of spec's machine without making one.
func (r *Runner) Lookup(ctx context.Context, e *env.Environment, spec vm.Spec) (*snapshot.Snapshot, error) {
	key, err := r.SnapshotKey(ctx, e, spec)
	if err != nil {
		return nil, err
	}
	return r.Snapshots().Lookup(key, e.RootfsPath)
}

// Drop removes the snapshot of spec's machine, if any, so that the next
// lookup makes a new one.
func (r *Runner) Drop(ctx context.Context, e *env.Environment, spec vm.Spec) error {
	snap, err := r.Lookup(ctx, e, spec)
	if err != nil {
		return nil // no key or no snapshot: nothing to drop
	}
	return r.Snapshots().Remove(snap)
}

// SnapshotKey names everything a restored machine depends on.
func (r *Runner) SnapshotKey(ctx context.Context, e *env.Environment, spec vm.Spec) (snapshot.Key, error) {
	qv, err := qemu.Version(ctx, filepath.Join(r.Snapshots().Root(), "qemu-version.json"))
	if err != nil {
		return snapshot.Key{}, err
	}
	m := e.Manifest
	k := snapshot.Key{
		Environment: m.Name, EnvVersion: m.Version, RootfsSHA256: m.Rootfs.SHA256,
		KernelSHA256: m.Kernel.SHA256, AgentSHA256: m.AgentSHA256,
		VCPUs: spec.VCPUs, MemMiB: spec.MemMiB, Accel: string(spec.Accel), QEMUVersion: qv,
		Machine: spec.MachineDigest(),
	}
	if spec.Accel == vmm.AccelKVM {
		k.Host = qemu.HostID()
	}
	return k, k.Validate()
}

// PruneSnapshots removes snapshots whose environment image is gone (or that
// are otherwise invalid), after an environment prune.
func (r *Runner) PruneSnapshots() []snapshot.Removed {
	return r.Snapshots().Prune(nil)
}
