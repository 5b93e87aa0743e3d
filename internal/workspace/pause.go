package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// Resumed says how a paused workspace came back.
type Resumed struct {
	// Restored is true when the saved machine was restored: processes,
	// services and memory as they were. False: the state could not be
	// restored and the workspace booted cold from its disk (RestoreError
	// says why).
	Restored     bool   `json:"restored"`
	RestoreError string `json:"restore_error,omitempty"`
	ResumeMs     int64  `json:"resume_ms"` // restore (or cold boot) up to the agent's answer
}

// paused returns the saved machine of p when it is complete and still
// matches the disk exactly (nothing wrote to it since the pause), else nil.
func paused(p Paths) *supervisor.Paused {
	if !wire.PausedValid(p.PauseDir(), p.Disk()) {
		return nil
	}
	meta, err := supervisor.ReadPaused(p.PauseDir())
	if err != nil {
		return nil
	}
	return meta
}

// discardPause removes a saved machine (a stop, reset or cold start moves
// the disk on: the state would no longer match it).
func discardPause(p Paths) {
	_ = os.RemoveAll(p.PauseDir())
}

// Pause saves the running workspace's machine into its dir and ends its
// supervisor and VMM. A pause already done answers as is. If the caller
// dies meanwhile the supervisor still finishes: the workspace ends paused,
// or (when the supervisor dies) stopped with its disk.
func (m *Manager) Pause(ctx context.Context, ref string) (*Record, *supervisor.Paused, error) {
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	return m.pauseLocked(ctx, p, rec)
}

func (m *Manager) pauseLocked(ctx context.Context, p Paths, rec *Record) (*Record, *supervisor.Paused, error) {
	switch m.liveState(ctx, rec) {
	case StatePaused:
		rec.State = StatePaused
		return rec, paused(p), store.WriteRecord(p, rec)
	case StateStopped:
		return nil, nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeWorkspaceStopped,
			"workspace %s is stopped: there is no running machine to pause; run \"pyro workspace start %s\" first", rec.ID, rec.ID)
	}
	info, err := readInfo(p)
	if err != nil {
		return nil, nil, err
	}
	discardPause(p) // what an unfinished pause left
	sc := supervisor.Dial(p.Socket())
	meta, err := sc.Pause(ctx)
	sc.Close()
	// The supervisor exits after the save, whatever came of it.
	if !waitGone(info.Pid, info.PidStart, stopTimeout) {
		killSupervisor(info)
	}
	m.stopSupervisor(ctx, p) // its leftovers
	if saved := paused(p); saved != nil {
		meta, err = saved, nil
	}
	if err != nil {
		discardPause(p)
		rec.State = StateStopped
		if werr := store.WriteRecord(p, rec); werr != nil {
			err = errors.Join(err, werr)
		}
		return nil, nil, errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodePauseFailed,
			"pausing workspace %s failed; it is stopped with its disk (run \"pyro workspace start %s\")", rec.ID, rec.ID)
	}
	rec.State = StatePaused
	return rec, meta, store.WriteRecord(p, rec)
}

// Resume restores a paused workspace's machine: its processes go on where
// they were. A state that cannot be restored falls back to a cold boot of
// the disk (Resumed says so). A running workspace answers as is; a stopped
// one is an error (start it).
func (m *Manager) Resume(ctx context.Context, ref string) (*Record, *Resumed, error) {
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	return m.resumeLocked(ctx, p, rec)
}

func (m *Manager) resumeLocked(ctx context.Context, p Paths, rec *Record) (*Record, *Resumed, error) {
	switch m.liveState(ctx, rec) {
	case StateRunning:
		rec.State = StateRunning
		return rec, nil, nil
	case StateStopped:
		return nil, nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeWorkspaceNotPaused,
			"workspace %s is stopped, not paused: run \"pyro workspace start %s\" to boot it from its disk", rec.ID, rec.ID)
	}
	meta := paused(p)
	m.stopSupervisor(ctx, p) // leftovers of the one that paused
	// From here on the state is used up: a crash leaves the workspace
	// stopped with its disk, never restoring a state its disk moved past.
	if err := os.Remove(filepath.Join(p.PauseDir(), supervisor.PausedMetaFile)); err != nil {
		return nil, nil, err
	}
	_ = fsutil.SyncDir(p.PauseDir())
	info, err := m.launch(ctx, p, rec, filepath.Join(p.PauseDir(), supervisor.PausedStateFile), func(s *supervisor.Spec) {
		s.Resume = &supervisor.ResumeSpec{Ports: meta.Ports, NewMachineID: meta.Fork}
	})
	if err != nil {
		discardPause(p)
		rec.State = StateStopped
		return nil, nil, errors.Join(err, store.WriteRecord(p, rec))
	}
	// The new supervisor removes the used-up state once it has answered
	// (supervisor.dropPausedState): off this call's path.
	rec.State = StateRunning
	rec.LastActivityAt = time.Now().UTC()
	res := &Resumed{Restored: info.Restored, RestoreError: info.RestoreError, ResumeMs: info.BootMs}
	if !res.Restored {
		m.log.Warn("the paused state did not restore: booted cold from the disk", "workspace", rec.ID, "err", info.RestoreError)
	}
	return rec, res, store.WriteRecord(p, rec)
}

// resumeForCall brings a paused workspace back for a call that needs its VM.
func (m *Manager) resumeForCall(ctx context.Context, id string) error {
	_, _, err := m.Resume(ctx, id)
	return err
}

// pausedLive is the live state of a workspace whose supervisor is not
// running: paused when a complete saved machine matches its disk.
func pausedLive(p Paths) string {
	if paused(p) != nil {
		return StatePaused
	}
	return StateStopped
}

// PausedInfo is the saved machine of a paused workspace, or nil.
func (m *Manager) PausedInfo(id string) *supervisor.Paused { return paused(m.paths(id)) }

// setIdle tells a running supervisor its new idle time.
func (m *Manager) setIdle(ctx context.Context, p Paths, seconds int) error {
	info, err := readInfo(p)
	if err != nil || !vm.Alive(info.Pid, info.PidStart) {
		return nil // not running: the next boot takes it from the record
	}
	sc := supervisor.Dial(p.Socket())
	defer sc.Close()
	return sc.SetIdle(ctx, seconds)
}

// refusedByPause reports whether a call was refused because its workspace
// was being paused (an idle pause racing with the call): it never ran.
func refusedByPause(err error) bool { return errdefs.CodeOf(err) == supervisor.CodePausing }

// afterPause waits for the pause under way to end and hands back a client
// of the resumed workspace, for the caller to retry the refused call once.
func (m *Manager) afterPause(ctx context.Context, ref string) (*Record, *supervisor.Client, error) {
	if r, err := m.Resolve(ref); err == nil {
		if info, err := readInfo(m.paths(r.ID)); err == nil {
			waitGone(info.Pid, info.PidStart, stopTimeout)
		}
	}
	return m.running(ctx, ref)
}
