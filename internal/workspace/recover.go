package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// halfCreatedAge is how old a workspace dir without a record must be before
// Tidy removes it: younger ones may be a create that just began.
const halfCreatedAge = time.Minute

// Tidy is what every workspace call does first, in one pass over the
// workspaces, so that whichever pyro process comes next does the work:
//
// It finishes what pyro processes that died (kill -9, crash, power loss)
// left half done, so that nothing leaks and no workspace is left in
// between. A workspace whose lock is held is being worked on and is left
// alone.
//   - A create that never returned is undone: the caller never got an id.
//   - A reset that never returned is rolled back, as a failed one is: the
//     new VM is stopped and the disk from before the reset is put back.
//   - A supervisor running for a workspace recorded as stopped (its
//     launcher died before recording it) is stopped.
//
// Then it deletes the workspaces whose TTL has passed (the lock in Delete
// keeps two processes from colliding), or pauses them when their TTL action
// is pause.
func (m *Manager) Tidy(ctx context.Context, now time.Time) (recovered, expired []string, err error) {
	entries, err := os.ReadDir(m.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	m.checkResolved.Store(false)
	stamp := store.TidyStamp{At: now}
	for _, e := range entries {
		if !e.IsDir() || !vm.ValidID(e.Name()) {
			continue
		}
		p := m.paths(e.Name())
		if rec, quiet := store.Quiet(p, now); quiet {
			stamp.Include(rec)
			continue
		}
		removeDeadOutputTemps(p)
		removeStaleRecordTemps(p, now)
		if m.recoverOne(ctx, p) {
			recovered = append(recovered, e.Name())
		}
		rec, err := store.ReadRecord(p)
		if err != nil || rec.Creating { // a live create; a dead one was undone above
			continue
		}
		if exp := rec.ExpiresAt(); exp.IsZero() || now.Before(exp) {
			stamp.Include(rec)
			continue
		}
		if rec.TTLAction == TTLPause {
			// Expired: no longer running, its data kept; the next call resumes it.
			if m.liveState(ctx, rec) == StateRunning {
				if _, _, err := m.Pause(ctx, rec.ID); err != nil {
					m.log.Warn("pausing expired workspace", "workspace", rec.ID, "err", err)
				}
			}
			continue
		}
		if _, err := m.Delete(ctx, rec.ID); err != nil && !errdefs.IsNotFound(err) {
			m.log.Warn("reaping expired workspace", "workspace", rec.ID, "err", err)
			continue
		}
		expired = append(expired, rec.ID)
	}
	store.WriteTidyStamp(m.root, stamp)
	return recovered, expired, nil
}

// ReapExpired deletes every workspace whose TTL has passed (and does the
// rest of Tidy's work), returning their ids.
func (m *Manager) ReapExpired(ctx context.Context, now time.Time) ([]string, error) {
	_, expired, err := m.Tidy(ctx, now)
	return expired, err
}

func (m *Manager) recoverOne(ctx context.Context, p Paths) bool {
	l := store.ExistingLock(p)
	got, err := l.TryLock()
	if errors.Is(err, os.ErrNotExist) {
		// No lock file: a create that died before taking it (or a delete
		// under way, which this only repeats).
		if st, err := os.Stat(p.Dir); err == nil && time.Since(st.ModTime()) > halfCreatedAge {
			m.destroy(p)
			return true
		}
		return false
	}
	if err != nil || !got {
		return false // busy, or not ours to judge
	}
	defer l.Unlock()
	rec, err := store.ReadRecord(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if st, err := os.Stat(p.Dir); err == nil && time.Since(st.ModTime()) > halfCreatedAge {
			m.log.Warn("removing a workspace dir a dead create left without a record", "dir", p.Dir)
			m.destroy(p)
			return true
		}
		return false
	case err != nil:
		return false
	case rec.Creating:
		m.log.Warn("undoing a create whose process died", "workspace", rec.ID)
		m.destroy(p)
		return true
	}
	if p.ResetInterrupted() {
		m.log.Warn("rolling back a reset whose process died", "workspace", rec.ID)
		m.stopSupervisor(ctx, p)
		m.rollbackReset(p)
		rec.State = StateStopped
		if err := store.WriteRecord(p, rec); err != nil {
			m.log.Warn("recording the rolled back reset", "workspace", rec.ID, "err", err)
		}
		return true
	}
	cleaned := removeDeadSnapshotTemps(p)
	if _, err := os.Stat(p.PauseDir()); err == nil && m.liveState(ctx, rec) == StateStopped {
		// A pause whose supervisor died before it finished, or a saved
		// machine whose disk moved on: worthless, and large.
		discardPause(p)
		cleaned = true
	}
	if cleaned {
		m.log.Warn("removed what a dead snapshot create left", "workspace", rec.ID)
	}
	if rec.State == StateStopped {
		if info, err := readInfo(p); err == nil && vm.Alive(info.Pid, info.PidStart) {
			m.log.Warn("stopping a supervisor its dead launcher never recorded", "workspace", rec.ID)
			m.stopSupervisor(ctx, p)
			return true
		}
	}
	if rec.State == StateRunning && supervisorGone(p) {
		// Its supervisor died (kill -9, a guest crash) or powered off for a
		// stop whose caller died: reap its VM dir, socket and record files
		// now, not at the next start, and record the truth.
		// A supervisor that saved its machine first (a pause whose caller
		// died, an idle pause) ended on purpose: the workspace is paused.
		m.log.Warn("reaping the leftovers of a dead supervisor", "workspace", rec.ID)
		m.stopSupervisor(ctx, p)
		rec.State = pausedLive(p)
		if err := store.WriteRecord(p, rec); err != nil {
			m.log.Warn("recording the stopped workspace", "workspace", rec.ID, "err", err)
		}
		return true
	}
	return cleaned
}

// supervisorGone reports a running workspace whose supervisor (ready or
// still booting) is no longer alive.
func supervisorGone(p Paths) bool {
	for _, at := range []string{p.Supervisor(), p.SupervisorPid()} {
		if info, err := wire.ReadInfo(at); err == nil && vm.Alive(info.Pid, info.PidStart) {
			return false
		}
	}
	return true
}

// removeDeadSnapshotTemps removes the temp file and extraction dir of every
// snapshot create whose process died: its temp file is no longer flocked
// (or is gone while its dir is left). A live create keeps its flock.
func removeDeadSnapshotTemps(p Paths) (removed bool) {
	ents, err := os.ReadDir(p.SnapshotDir())
	if err != nil {
		return false
	}
	for _, e := range ents {
		name := filepath.Join(p.SnapshotDir(), e.Name())
		switch {
		case strings.HasSuffix(name, store.SnapshotTmpSuffix):
			f, err := os.Open(name)
			if err != nil {
				continue
			}
			free := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
			if free { // held until the removal, so no new create takes it meanwhile
				os.RemoveAll(name + store.ExtractDirSuffix)
				os.Remove(name)
				removed = true
			}
			f.Close()
		case strings.HasSuffix(name, store.SnapshotTmpSuffix+store.ExtractDirSuffix):
			if _, err := os.Stat(strings.TrimSuffix(name, store.ExtractDirSuffix)); errors.Is(err, os.ErrNotExist) {
				os.RemoveAll(name)
				removed = true
			}
		}
	}
	return removed
}

// recordTempAge is how old a record's temporary must be to be a dead
// writer's: a live one exists for the milliseconds of one write.
const recordTempAge = time.Minute

// removeStaleRecordTemps removes the temporaries of record writes whose
// process died mid-write (fsutil.ReplaceJSON and WriteJSONAtomic write
// ".workspace.json*" beside the record, then rename it over).
func removeStaleRecordTemps(p Paths, now time.Time) {
	temps, _ := filepath.Glob(filepath.Join(p.Dir, "."+filepath.Base(p.Record())+"*"))
	for _, t := range temps {
		if fi, err := os.Lstat(t); err == nil && now.Sub(fi.ModTime()) > recordTempAge {
			_ = os.Remove(t)
		}
	}
}
