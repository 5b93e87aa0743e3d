package workspace

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// MaxForks bounds the forks of one call.
const MaxForks = 16

// ForkedFromLabel names the workspace a fork was made from.
const ForkedFromLabel = "forked_from"

// layersDir holds the disks that forks share: immutable disk files (the
// backend's format), each the disk of a workspace at the instant it was
// forked. A source and its forks read through it; it goes when no
// workspace's disk does. Absolute: a disk names its backing file by this
// path.
func (m *Manager) layersDir() string {
	root, err := filepath.Abs(m.root)
	if err != nil {
		root = m.root
	}
	return filepath.Join(root, "layers")
}

// layerExt marks a layer file: the backend's disk file extension.
func (m *Manager) layerExt() string { return filepath.Ext(m.backend.DiskFile()) }

// lockLayers makes the layers dir if need be and takes its lock.
func (m *Manager) lockLayers() (unlock func(), err error) {
	if err := os.MkdirAll(m.layersDir(), 0o700); err != nil {
		return nil, err
	}
	ll := m.layersLock()
	if err := ll.Lock(); err != nil {
		return nil, err
	}
	return func() { ll.Unlock() }, nil
}

func (m *Manager) layersLock() *flock.Flock {
	return flock.New(filepath.Join(m.layersDir(), ".lock"))
}

// ForkNames are the names of count forks with prefix ("" = unnamed).
func ForkNames(prefix string, count int) ([]string, error) {
	if count < 1 || count > MaxForks {
		return nil, errdefs.InvalidArgument("count", "%d is out of range [1, %d]", count, MaxForks)
	}
	names := make([]string, count)
	if prefix == "" {
		return names, nil
	}
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i+1)
		if err := ValidateName(names[i]); err != nil {
			return nil, errdefs.InvalidArgument("name", "fork names are PREFIX-N: %q is not a valid workspace name", names[i])
		}
	}
	return names, nil
}

// Fork makes count workspaces from the source's memory and disk at this
// instant: a running source saves its machine while it goes on (forkLive),
// a paused one is used as saved; its disk becomes a shared read-only layer
// under a fresh top, each fork gets its own overlay over that layer plus
// the saved machine, and the forks are resumed. Forks keep the baseline, snapshots,
// history, labels (plus forked_from), secrets, network policy and services;
// each has its own id, network stack, published host ports and entropy.
// On error no fork is left and the source is as it was (running or paused),
// or stopped with its disk when even that failed.
func (m *Manager) Fork(ctx context.Context, ref string, names []string) (*Record, []*Record, error) {
	for _, n := range names {
		if n == "" {
			continue
		}
		if _, err := m.Resolve(n); err == nil {
			return nil, nil, errdefs.New(errdefs.ErrAlreadyExists, errdefs.CodeNameTaken, "a workspace named %q already exists: pick another --name prefix", n)
		}
	}
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	wasRunning := false
	switch m.liveState(ctx, rec) {
	case StateStopped:
		return nil, nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeWorkspaceStopped,
			"workspace %s is stopped: a fork copies a running (or paused) machine; run \"pyro workspace start %s\" first", rec.ID, rec.ID)
	case StateRunning:
		wasRunning = true
	}
	start := time.Now()
	var forks []fork
	var ferr error
	if wasRunning {
		// The source goes on running: it is stopped only while its
		// machine is saved (forkLive).
		forks, ferr = m.forkLive(ctx, p, rec, names)
	} else {
		var meta *supervisor.Paused
		if rec, meta, err = m.pauseLocked(ctx, p, rec); err != nil {
			return nil, nil, err
		}
		forks, ferr = m.makeForks(ctx, p, rec, meta, names)
	}
	made := time.Now()
	// The forks at once: each restore is mostly the guest waking up.
	out := make([]*Record, len(forks))
	errs := make([]error, len(forks))
	var wg sync.WaitGroup
	if ferr == nil {
		for i, f := range forks {
			wg.Go(func() { out[i], errs[i] = m.finishFork(ctx, f) })
		}
	}
	wg.Wait()
	// Where a fork's time goes (PYRO_LOG=debug).
	m.log.Debug("fork timing", "workspace", rec.ID, "forks", len(names), "live", wasRunning,
		"save_ms", made.Sub(start).Milliseconds(), "resume_ms", time.Since(made).Milliseconds())
	ferr = errors.Join(append(errs, ferr)...)
	for _, f := range forks {
		if ferr != nil {
			m.destroy(f.p)
		}
		f.unlock()
	}
	if ferr != nil {
		m.gcLayers(ctx)
		if wasRunning && m.liveState(ctx, rec) == StateStopped {
			// Its supervisor died in the save: the disk is whole (the old
			// file, or the new top over the layer).
			rec.State = StateStopped
			ferr = errors.Join(ferr, store.WriteRecord(p, rec))
			return nil, nil, errdefs.Wrap(ferr, errdefs.ErrUnavailable, errdefs.CodeForkFailed,
				"forking workspace %s failed; no fork was kept and the workspace is stopped with its disk (run \"pyro workspace start %s\")", rec.ID, rec.ID)
		}
		return nil, nil, errdefs.Wrap(ferr, errdefs.ErrUnavailable, errdefs.CodeForkFailed, "forking workspace %s failed; no fork was kept", rec.ID)
	}
	if rec, err = store.ReadRecord(p); err == nil {
		rec.State = m.liveState(ctx, rec)
	}
	return rec, out, err
}

type fork struct {
	p      Paths
	rec    *Record
	unlock func()
}

// makeForks puts the paused source's disk under a shared layer and makes
// the forks' dirs: each a paused workspace whose saved machine is the
// source's (hard-linked: QEMU only reads it), still marked Creating and
// locked, so that a crash leaves none behind.
func (m *Manager) makeForks(ctx context.Context, p Paths, rec *Record, meta *supervisor.Paused, names []string) ([]fork, error) {
	unlock, err := m.lockLayers()
	if err != nil {
		return nil, err
	}
	defer unlock()
	layer, err := m.rebaseOnLayer(ctx, p)
	if err != nil {
		return nil, err
	}
	// The source's saved machine belongs to its new disk file now.
	if meta.Disk, err = supervisor.DiskIDOf(p.Disk()); err != nil {
		return nil, err
	}
	if err := fsutil.WriteJSONAtomic(filepath.Join(p.PauseDir(), supervisor.PausedMetaFile), meta, 0o600); err != nil {
		return nil, err
	}
	forks, err := m.newForks(ctx, p, rec, layer, names)
	if err != nil {
		return nil, err
	}
	for _, f := range forks {
		if err == nil {
			err = placeState(f, filepath.Join(p.PauseDir(), supervisor.PausedStateFile), meta)
		}
	}
	if err != nil {
		m.dropForks(forks)
		return nil, err
	}
	return forks, nil
}

// forkLive forks the running workspace at p without ending its machine:
// under the layers lock, its disk file is linked as a new layer, an empty
// new top over it and the forks' dirs (their disks over the layer too) are
// made at once, then the supervisor saves the machine into the first fork
// (stop, freeze the disk under the new top, save, make the new top the
// disk.qcow2 too, go on: vm.ForkSave); each fork gets the state and its
// paused.json. At every instant the source's disk.qcow2 is a whole disk: the
// old file until the rename, then the new top over the layer (the same
// content). A crash of the supervisor in the save leaves the source stopped
// with that disk; of this process, forks still marked Creating (Tidy).
func (m *Manager) forkLive(ctx context.Context, p Paths, rec *Record, names []string) ([]fork, error) {
	unlock, err := m.lockLayers()
	if err != nil {
		return nil, err
	}
	defer unlock()
	layer := filepath.Join(m.layersDir(), vm.NewID()+m.layerExt())
	if err := os.Link(p.Disk(), layer); err != nil {
		return nil, err
	}
	newTop := filepath.Join(p.Dir, supervisor.TopPrefix(p.Disk())+vm.NewID())
	var topErr error
	var wg sync.WaitGroup
	wg.Go(func() { topErr = m.backend.NewLayer(ctx, newTop, layer) })
	forks, err := m.newForks(ctx, p, rec, layer, names)
	wg.Wait()
	var meta *supervisor.Paused
	if err == nil && topErr == nil {
		state := filepath.Join(forks[0].p.PauseDir(), supervisor.PausedStateFile)
		sc := supervisor.Dial(p.Socket())
		meta, err = sc.ForkSave(ctx, supervisor.ForkRequest{StatePath: state, NewTop: newTop})
		sc.Close()
		for _, f := range forks {
			if err == nil {
				err = placeState(f, state, meta)
			}
		}
	}
	err = errors.Join(err, topErr)
	// The supervisor made the new top the disk once the disk was frozen,
	// even when the save failed then: from that moment the layer is the
	// source's own backing file, for good (the new top keeps its own name
	// while QEMU runs: supervisor.RemoveStaleTops).
	if swapped(newTop, p.Disk()) {
		_ = os.Chmod(layer, 0o400)
	} else {
		os.Remove(newTop)
		os.Remove(layer) // a second name of the source's disk, never used
	}
	_ = fsutil.SyncDir(p.Dir)
	_ = fsutil.SyncDir(m.layersDir())
	if err != nil {
		m.dropForks(forks)
		return nil, err
	}
	return forks, nil
}

// swapped reports whether disk is now the file newTop.
func swapped(newTop, disk string) bool {
	a, err := os.Stat(newTop)
	if err != nil {
		return false
	}
	b, err := os.Stat(disk)
	return err == nil && os.SameFile(a, b)
}

// newForks makes the forks' dirs at once (newFork); on error none is left.
func (m *Manager) newForks(ctx context.Context, src Paths, srcRec *Record, layer string, names []string) ([]fork, error) {
	forks := make([]fork, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { forks[i], errs[i] = m.newFork(ctx, src, srcRec, layer, name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var made []fork
		for i, f := range forks {
			if errs[i] == nil {
				made = append(made, f)
			}
		}
		m.dropForks(made)
		return nil, err
	}
	return forks, nil
}

// dropForks removes forks that were made but not resumed.
func (m *Manager) dropForks(forks []fork) {
	for _, f := range forks {
		m.destroy(f.p)
		f.unlock()
	}
}

// rebaseOnLayer turns the workspace's disk into a read-only layer and
// gives the workspace a fresh overlay over it. At every step its disk is
// a whole disk with the same content: first the file itself (the layer is
// a second link to it), then the overlay.
func (m *Manager) rebaseOnLayer(ctx context.Context, p Paths) (string, error) {
	layer := filepath.Join(m.layersDir(), vm.NewID()+m.layerExt())
	if err := os.Link(p.Disk(), layer); err != nil {
		return "", err
	}
	if err := m.backend.NewLayer(ctx, p.Disk(), layer); err != nil { // replaces the disk by rename
		os.Remove(layer)
		return "", err
	}
	_ = os.Chmod(layer, 0o400)
	_ = fsutil.SyncDir(p.Dir)
	_ = fsutil.SyncDir(m.layersDir())
	return layer, nil
}

// newFork makes one fork's dir: record (Creating, paused), files shared
// with the source where they never change, its disk over layer, and the
// source's saved machine.
func (m *Manager) newFork(ctx context.Context, src Paths, srcRec *Record, layer, name string) (f fork, err error) {
	id := vm.NewID()
	f.p = m.paths(id)
	if err := os.Mkdir(f.p.Dir, 0o700); err != nil {
		return f, err
	}
	l := flock.New(f.p.Lock())
	if err := l.Lock(); err != nil {
		os.RemoveAll(f.p.Dir)
		return f, err
	}
	f.unlock = func() { l.Unlock() }
	defer func() {
		if err != nil {
			m.destroy(f.p)
			l.Unlock()
		}
	}()
	now := time.Now().UTC()
	r := *srcRec
	r.ID, r.Name, r.CreatedAt, r.LastActivityAt = id, name, now, now
	r.Labels = maps.Clone(srcRec.Labels)
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	r.Labels[ForkedFromLabel] = srcRec.ID
	r.State, r.Creating = StatePaused, true
	f.rec = &r
	if err := store.WriteRecord(f.p, f.rec); err != nil {
		return f, err
	}
	// Never rewritten in place (replaced by rename, or removed): links are safe.
	if err := linkIfExists(src.Baseline(), f.p.Baseline()); err != nil {
		return f, err
	}
	for _, s := range srcRec.Snapshots {
		if err := os.MkdirAll(f.p.SnapshotDir(), 0o700); err != nil {
			return f, err
		}
		if err := linkIfExists(src.Snapshot(s.Name), f.p.Snapshot(s.Name)); err != nil {
			return f, err
		}
	}
	// The broker CA goes with the secrets: the fork's guest already trusts
	// it (its disk and memory are the source's) and uses the same placeholders.
	for _, file := range []string{src.History(), src.Secrets(), src.BrokerCA()} {
		if _, err := os.Stat(file); err == nil {
			if err := fsutil.CopyFile(file, filepath.Join(f.p.Dir, filepath.Base(file)), 0o600); err != nil {
				return f, err
			}
		}
	}
	if err := m.backend.NewLayer(ctx, f.p.Disk(), layer); err != nil {
		return f, err
	}
	return f, os.MkdirAll(f.p.PauseDir(), 0o700)
}

// placeState gives fork f the saved machine at state (a hard link: QEMU
// only reads it; state may already be f's own) and its paused.json, which
// makes it a paused workspace.
func placeState(f fork, state string, meta *supervisor.Paused) (err error) {
	own := filepath.Join(f.p.PauseDir(), supervisor.PausedStateFile)
	if state != own {
		if err := os.Link(state, own); err != nil {
			return err
		}
	}
	fm := *meta
	fm.Fork = true // its restore gives the guest its own machine id
	fm.Shells = nil
	fm.Ports = nil
	for _, sp := range meta.Ports {
		sp.Ports = append(sp.Ports[:0:0], sp.Ports...)
		for i := range sp.Ports {
			sp.Ports[i].HostPort = 0 // the source keeps its host ports; a fork gets free ones
		}
		fm.Ports = append(fm.Ports, sp)
	}
	if fm.Disk, err = supervisor.DiskIDOf(f.p.Disk()); err != nil {
		return err
	}
	return fsutil.WriteJSONAtomic(filepath.Join(f.p.PauseDir(), supervisor.PausedMetaFile), &fm, 0o600)
}

// finishFork resumes a fork (its hello gives it its own machine id: see
// Paused.Fork) and records it made.
func (m *Manager) finishFork(ctx context.Context, f fork) (*Record, error) {
	start := time.Now()
	rec, res, err := m.resumeLocked(ctx, f.p, f.rec)
	if err != nil {
		return nil, err
	}
	if res == nil || !res.Restored {
		return nil, fmt.Errorf("the fork did not restore the source's machine: %s", res.RestoreError)
	}
	m.log.Debug("fork resumed", "workspace", rec.ID, "resume_ms", time.Since(start).Milliseconds())
	rec.Creating = false
	return rec, store.WriteRecord(f.p, rec)
}

func linkIfExists(src, dst string) error {
	err := os.Link(src, dst)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// gcLayers removes the layers no workspace disk reads through any more
// (the last of a source and its forks was deleted or reset).
func (m *Manager) gcLayers(ctx context.Context) {
	layers, err := os.ReadDir(m.layersDir())
	if err != nil || len(layers) <= 1 { // none, or only the lock
		return
	}
	ll := m.layersLock()
	if err := ll.Lock(); err != nil {
		return
	}
	defer ll.Unlock()
	used := map[string]bool{}
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !vm.ValidID(e.Name()) {
			continue
		}
		disks, _ := filepath.Glob(m.paths(e.Name()).DiskPattern())
		for _, d := range disks {
			files, err := m.backend.BackingFiles(ctx, d)
			if err != nil {
				m.log.Warn("reading a disk's layers: keeping every layer", "disk", d, "err", err)
				return
			}
			for _, f := range files {
				used[filepath.Clean(f)] = true
			}
		}
	}
	for _, l := range layers {
		path := filepath.Join(m.layersDir(), l.Name())
		if strings.HasSuffix(l.Name(), m.layerExt()) && !used[path] {
			if err := os.Remove(path); err != nil {
				m.log.Warn("removing an unused disk layer", "layer", path, "err", err)
			}
		}
	}
}
