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
)

// One-shot runs, and workspaces when created, start from a memory snapshot of
// their machine (environment, size, accelerator) booted once to its agent:
// see docs/architecture.md, "Snapshot restore".

// snapshotWarmup runs once in the guest before it is saved, so that the
// shell every run starts (and what it reads) is in the guest's page cache,
// and the agent holds the login environment (see agent/login.go).
const snapshotWarmup = "true"

func (c *Runner) snapshots() *snapshot.Store {
	return snapshot.NewStore(c.cacheDir, c.backend.DiskFile())
}

// bootForRun boots the VM of a one-shot run: restored from the snapshot of
// its machine (made first if missing), else cold. A snapshot that cannot be
// made or restored never fails the run: it is logged and removed, and the
// run boots cold. The VM's BootDur covers a failed restore too.
func (c *Runner) bootForRun(ctx context.Context, e *env.Environment, spec vm.Spec) (*vm.VM, error) {
	snap := c.RunSnapshot(ctx, e, spec)
	start := time.Now()
	if snap != nil {
		rs := spec
		rs.Snapshot = &vmm.Restore{StatePath: snap.StatePath, DiskPath: snap.DiskPath}
		rs.BootTimeout = vm.RestoreTimeout
		v, err := vm.Boot(ctx, c.backend, c.vmsDir(), rs, c.log)
		if err == nil {
			c.log.Debug("vm restored from snapshot", "vm", v.ID, "snapshot", snap.Meta.ID, "boot_ms", v.BootDur.Milliseconds())
			return v, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		c.InvalidateSnapshot(snap, err)
	}
	v, err := vm.Boot(ctx, c.backend, c.vmsDir(), spec, c.log)
	if err != nil {
		return nil, err
	}
	v.BootDur = time.Since(start)
	return v, nil
}

// InvalidateSnapshot removes snap after a restore from it failed (cause);
// the caller boots cold.
func (c *Runner) InvalidateSnapshot(snap *snapshot.Snapshot, cause error) {
	c.log.Warn("restoring a snapshot failed: removing it and booting cold", "snapshot", snap.Dir, "err", cause)
	if err := c.snapshots().Invalidate(snap, cause); err != nil {
		c.log.Warn("removing a failed snapshot", "snapshot", snap.Dir, "err", err)
	}
}

// RunSnapshot returns the valid snapshot for spec's machine, making it when
// missing, or nil when there is none to use (never an error: the run then
// boots cold).
func (c *Runner) RunSnapshot(ctx context.Context, e *env.Environment, spec vm.Spec) *snapshot.Snapshot {
	store := c.snapshots()
	key, err := c.snapshotKey(ctx, store, e, spec)
	if err != nil {
		c.log.Warn("no snapshot for this machine", "err", err)
		return nil
	}
	snap, err := store.Lookup(key, e.RootfsPath)
	if err == nil {
		return snap
	}
	c.log.Debug("no usable snapshot", "reason", err)
	c.report(ctx, "snapshot", "preparing a fast-start snapshot of "+e.Manifest.Name+" (once per environment and machine size)")
	start := time.Now()
	snap, err = store.Create(ctx, key, e.RootfsPath, func(ctx context.Context, dir string) error {
		return vm.Save(ctx, c.backend, c.vmsDir(), spec, filepath.Join(dir, store.DiskFile()), filepath.Join(dir, snapshot.StateFile), snapshotWarmup, c.log)
	})
	switch {
	case err == nil:
		c.log.Info("snapshot created", "snapshot", snap.Dir, "ms", time.Since(start).Milliseconds(), "state_bytes", snap.Meta.StateSize)
		return snap
	case errors.Is(err, snapshot.ErrBusy), errors.Is(err, snapshot.ErrRecentlyFailed):
		c.log.Debug("booting cold", "reason", err)
	case ctx.Err() == nil:
		c.log.Warn("creating a snapshot failed: booting cold", "err", err)
	}
	return nil
}

// AwaitSnapshot is RunSnapshot for a caller that asked for the snapshot
// (prepare, a build): when another process is making it, it waits for that
// one instead of going without. nil when there is none even so.
func (c *Runner) AwaitSnapshot(ctx context.Context, e *env.Environment, spec vm.Spec) *snapshot.Snapshot {
	if snap := c.RunSnapshot(ctx, e, spec); snap != nil || ctx.Err() != nil {
		return snap
	}
	store := c.snapshots()
	key, err := c.snapshotKey(ctx, store, e, spec)
	if err != nil {
		return nil
	}
	snap, err := store.Await(ctx, key, e.RootfsPath)
	if err != nil {
		c.log.Debug("no snapshot after waiting for its maker", "err", err)
		return nil
	}
	return snap
}

// snapshotKey names everything a restored machine depends on.
func (c *Runner) snapshotKey(ctx context.Context, store *snapshot.Store, e *env.Environment, spec vm.Spec) (snapshot.Key, error) {
	id, err := spec.Identity(ctx, c.backend, store.Root())
	if err != nil {
		return snapshot.Key{}, err
	}
	m := e.Manifest
	k := snapshot.Key{
		Environment: m.Name, EnvVersion: m.Version, RootfsSHA256: m.Rootfs.SHA256,
		KernelSHA256: m.Kernel.SHA256, AgentSHA256: m.AgentSHA256,
		VCPUs: spec.VCPUs, MemMiB: spec.MemMiB, Accel: string(spec.Accel),
		VMMVersion: id.Version, Machine: id.Machine, Host: id.Host, Warmup: snapshot.WarmupDigest(snapshotWarmup),
	}
	return k, k.Validate()
}
