package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// Snapshot error codes and the reserved source name.
const (
	CodeSnapshotExists   = errdefs.CodeSnapshotExists
	CodeSnapshotNotFound = errdefs.CodeSnapshotNotFound
	// Baseline names the create-time content as a reset source; no
	// snapshot may take the name.
	Baseline = "baseline"
)

// snapshotLimits bound what a snapshot takes from the guest.
var snapshotLimits = archive.Limits{}

// ValidateSnapshotName checks a snapshot name: the workspace name rules
// (which keep it one safe file name: no '/', no leading '.'), and not the
// reserved "baseline".
func ValidateSnapshotName(name string) error {
	if !SafeName(name) {
		return errdefs.InvalidArgument("name", "snapshot name %q must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	if strings.EqualFold(name, Baseline) {
		return errdefs.InvalidArgument("name", "%q is reserved for the create-time content (reset uses it by default): pick another snapshot name", name)
	}
	return nil
}

func snapshotNotFound(id, name string) error {
	return errdefs.New(errdefs.ErrNotFound, CodeSnapshotNotFound, "workspace %s has no snapshot %q", id, name).
		WithNext(": %s to see its snapshots", "pyro workspace snapshot list "+id, "snapshot_list")
}

func snapshotExists(id, name string) error {
	return errdefs.New(errdefs.ErrAlreadyExists, CodeSnapshotExists,
		"workspace %s already has a snapshot %q: pick another name or delete it first", id, name)
}

func findSnapshot(rec *Record, name string) int {
	return slices.IndexFunc(rec.Snapshots, func(s SnapshotInfo) bool { return s.Name == name })
}

// CreateSnapshot saves the running workspace's /workspace as snapshot name.
// The guest's archive is not trusted: it is extracted with the archive
// package's validated, bounded extraction into a temp dir inside the
// workspace dir and packed again, normalized, from there.
//
// The workspace lock is held only to reserve the name and to record the
// result, not during the transfer. The reservation is an flock on the
// temp file: a second create of the same name meanwhile gets
// snapshot_exists, and a crashed process releases it by dying.
func (m *Manager) CreateSnapshot(ctx context.Context, ref, name string) (_ *Record, _ *SnapshotInfo, err error) {
	if err := ValidateSnapshotName(name); err != nil {
		return nil, nil, err
	}
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	p := m.paths(r.ID)
	tmpFile, err := m.reserveSnapshot(p, name)
	if err != nil {
		return nil, nil, err
	}
	committed := false
	defer func() {
		if !committed {
			// Under the lock, so that no other create opens the path
			// between the removal and the flock's release.
			l, lerr := store.Lock(p)
			os.Remove(tmpFile.Name())
			if lerr == nil {
				l.Unlock()
			}
		}
		tmpFile.Close()
	}()

	pr, pw := io.Pipe()
	type result struct {
		stats archive.Stats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		st, err := snapshotFromStream(ctx, pr, tmpFile.Name()+store.ExtractDirSuffix, tmpFile, snapshotLimits)
		pr.CloseWithError(err)
		if err == nil {
			err = tmpFile.Sync()
		}
		if errdefs.IsNoSpace(err) && !errdefs.IsFailedPrecondition(err) {
			err = errdefs.HostNoSpace(err, p.SnapshotDir())
		}
		done <- result{st, err}
	}()
	gres, gerr := sc.GetArchive(ctx, Root, 0, pw)
	pw.CloseWithError(gerr)
	res := <-done
	red, err := m.redactor(r.ID)
	if err != nil {
		return nil, nil, err
	}
	if gerr != nil || res.err != nil {
		// Archive errors quote entry names the guest sent.
		return nil, nil, red.Error(firstTyped(gerr, res.err))
	}

	l, err := store.Lock(p)
	if err != nil {
		return nil, nil, err
	}
	defer l.Unlock()
	rec, err := store.ReadRecord(p)
	if err != nil {
		return nil, nil, err
	}
	if findSnapshot(rec, name) >= 0 { // cannot happen while we hold the reservation
		return nil, nil, snapshotExists(rec.ID, name)
	}
	final := p.Snapshot(name)
	if err := os.Rename(tmpFile.Name(), final); err != nil {
		return nil, nil, err
	}
	if err := fsutil.SyncDir(p.SnapshotDir()); err != nil {
		m.log.Warn("syncing the snapshot dir", "workspace", rec.ID, "err", err)
	}
	info := SnapshotInfo{Name: name, CreatedAt: time.Now().UTC(), Entries: res.stats.Entries, Bytes: res.stats.Bytes,
		Skipped: skippedOf(gres, red)}
	rec.Snapshots = append(rec.Snapshots, info)
	rec.LastActivityAt = info.CreatedAt
	if err := store.WriteRecord(p, rec); err != nil {
		os.Remove(final)
		return nil, nil, err
	}
	committed = true
	rec.State = m.liveState(ctx, rec)
	return rec, &info, nil
}

// reserveSnapshot checks under the workspace lock that name is free, and
// opens and flocks its temp file.
func (m *Manager) reserveSnapshot(p Paths, name string) (*os.File, error) {
	l, err := store.Lock(p)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	rec, err := store.ReadRecord(p)
	if err != nil {
		return nil, err
	}
	if findSnapshot(rec, name) >= 0 {
		return nil, snapshotExists(rec.ID, name)
	}
	if err := os.MkdirAll(p.SnapshotDir(), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p.SnapshotTmp(name), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errdefs.New(errdefs.ErrAlreadyExists, CodeSnapshotExists,
				"a snapshot %q of workspace %s is being created right now: pick another name", name, rec.ID)
		}
		return nil, err
	}
	// A crashed create may have left content: start empty.
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// snapshotFromStream turns an untrusted tar stream (the guest's archive of
// /workspace) into a normalized tar written to out: it extracts r with the
// validated, bounded archive.Extract into the fresh dir tmp (the caller
// owns that path: what a crashed process left there goes first), then packs
// that tree with archive.Seed. tmp is removed on every path.
func snapshotFromStream(ctx context.Context, r io.Reader, tmp string, out io.Writer, lim archive.Limits) (archive.Stats, error) {
	if err := os.RemoveAll(tmp); err != nil {
		return archive.Stats{}, err
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return archive.Stats{}, err
	}
	defer os.RemoveAll(tmp)
	if _, err := archive.Extract(ctx, r, tmp, lim); err != nil {
		return archive.Stats{}, err
	}
	return archive.Seed(ctx, tmp, out, lim)
}

// Snapshots returns the workspace's snapshots, oldest first.
func (m *Manager) Snapshots(ref string) (*Record, []SnapshotInfo, error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	out := append([]SnapshotInfo{}, r.Snapshots...)
	slices.SortStableFunc(out, func(a, b SnapshotInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return r, out, nil
}

// DeleteSnapshot removes a snapshot's file and its record entry.
func (m *Manager) DeleteSnapshot(ctx context.Context, ref, name string) (*Record, *SnapshotInfo, error) {
	if strings.EqualFold(name, Baseline) {
		return nil, nil, errdefs.InvalidArgument("name", "the baseline is not a snapshot and cannot be deleted")
	}
	if err := ValidateSnapshotName(name); err != nil {
		return nil, nil, err
	}
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	i := findSnapshot(rec, name)
	if i < 0 {
		return nil, nil, snapshotNotFound(rec.ID, name)
	}
	info := rec.Snapshots[i]
	rec.Snapshots = slices.Delete(rec.Snapshots, i, i+1)
	if err := store.WriteRecord(p, rec); err != nil {
		return nil, nil, err
	}
	if err := os.Remove(p.Snapshot(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("removing a deleted snapshot's file", "workspace", rec.ID, "snapshot", name, "err", err)
	}
	rec.State = m.liveState(ctx, rec)
	return rec, &info, nil
}

// CheckResetSource reports whether source ("" or "baseline" or a snapshot
// name) is something rec can be reset from, with the error Reset would give.
func CheckResetSource(rec *Record, source string) error {
	if source == "" || source == Baseline {
		return nil
	}
	if err := ValidateSnapshotName(source); err != nil {
		return err
	}
	if findSnapshot(rec, source) < 0 {
		return snapshotNotFound(rec.ID, source)
	}
	return nil
}

// Reset rebuilds the workspace's sandbox: under the workspace lock it stops
// the VM, boots a fresh one on a new disk exactly as Create does (restoring
// restore when set) and seeds /workspace from the baseline or the snapshot
// named source ("" = baseline). Shells and services end with the old VM;
// the command history is cleared; id, name, labels, TTL, baseline and
// snapshots stay. It returns the record and the source used.
//
// The replaced disk is kept aside until the new VM is seeded: if anything
// fails, the new VM is stopped, the old disk is put back and the workspace
// is left stopped with its files and history as before the reset (start
// it, or reset again). An interrupted reset is rolled back the same way by
// the next start or reset.
func (m *Manager) Reset(ctx context.Context, ref, source string, restore *Restore) (*Record, string, error) {
	if source == "" {
		source = Baseline
	}
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	if err := CheckResetSource(rec, source); err != nil {
		return nil, "", err
	}
	tarPath, entries := p.Baseline(), rec.Seed.Entries
	if source != Baseline {
		i := findSnapshot(rec, source)
		tarPath, entries = p.Snapshot(source), rec.Snapshots[i].Entries
	}
	if _, err := os.Stat(tarPath); err != nil && entries > 0 {
		return nil, "", errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal,
			"the %s archive of workspace %s is missing; nothing was changed", source, rec.ID)
	}

	m.stopSupervisor(ctx, p)
	discardPause(p) // the reset replaces the disk it was saved with
	if err := m.setAsideDisk(p); err != nil {
		return nil, "", err
	}
	rec.State = StateStopped
	if err := store.WriteRecord(p, rec); err != nil {
		m.rollbackReset(p)
		return nil, "", err
	}
	err = m.boot(ctx, p, rec, restore)
	if err == nil {
		err = m.seed(ctx, p, tarPath, entries)
	}
	if err != nil {
		m.stopSupervisor(ctx, p)
		m.rollbackReset(p)
		return nil, "", resetFailed(rec.ID, source, err)
	}
	if err := os.Remove(p.PreResetDisk()); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("removing the replaced disk", "workspace", rec.ID, "err", err)
	}
	if err := os.Remove(p.History()); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("clearing the history", "workspace", rec.ID, "err", err)
	}
	rec.Commands = 0
	rec.State = StateRunning
	rec.LastActivityAt = time.Now().UTC()
	return rec, source, store.WriteRecord(p, rec)
}

// setAsideDisk moves the current disk to PreResetDisk. If one is there
// already, an earlier reset was interrupted: that one is the disk from
// before it, and the current one (half seeded) goes.
func (m *Manager) setAsideDisk(p Paths) error {
	if p.ResetInterrupted() {
		if err := os.Remove(p.Disk()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.Rename(p.Disk(), p.PreResetDisk()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// rollbackReset puts the disk set aside by a reset back in place (the VM
// must be stopped). Without one (a workspace created with no_boot), the new
// disk is simply removed.
func (m *Manager) rollbackReset(p Paths) {
	if !p.ResetInterrupted() {
		os.Remove(p.Disk())
		return
	}
	if err := os.Rename(p.PreResetDisk(), p.Disk()); err != nil {
		m.log.Warn("putting the disk back after a failed reset", "dir", p.Dir, "err", err)
	}
}

func resetFailed(id, source string, cause error) error {
	msg := fmt.Sprintf("reset of workspace %s from %s failed, so it was rolled back: the workspace is stopped with its files and history as before the reset; start it, or retry the reset", id, source)
	var te *errdefs.Error
	if errors.As(cause, &te) {
		return errdefs.Wrap(cause, te.Class, te.Code, "%s (%s)", msg, te.Message)
	}
	return errdefs.Wrap(cause, errdefs.ErrInternal, errdefs.CodeInternal, "%s (%v)", msg, cause)
}
