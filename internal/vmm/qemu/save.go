package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/vmm"
)

var _ vmm.StateSaver = (*Machine)(nil)

// migratePoll is how often SaveState asks QEMU how far the save is.
const migratePoll = 10 * time.Millisecond

// unthrottled is the migration bandwidth limit SaveState sets (bytes/s):
// far above what a local file takes, so the disk and CPU set the pace.
const unthrottled = 64 << 30

// SaveState pauses the guest, migrates it into path and quits QEMU. It needs
// cfg.Saveable (the QMP socket). The state file is handed to QEMU as a descriptor over QMP
// (getfd + "migrate fd:"), so the seccomp sandbox's spawn=deny stays on: no
// "exec:" helper process is needed. QEMU flushes the root disk when the
// migration completes, so the disk file and the state file agree.
func (m *Machine) SaveState(ctx context.Context, path string) error {
	if !m.cfg.Saveable {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "machine %s was not made saveable (no QMP socket)", m.cfg.ID)
	}
	if m.cmd == nil {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "machine %s is not running", m.cfg.ID)
	}
	fail := m.saveFailure("save the machine state")
	f, q, err := m.stopForSave(ctx, path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	defer q.Close()
	if err := m.migrateTo(ctx, q, f, true); err != nil {
		return fail(err)
	}
	// QEMU may close the socket before it answers quit.
	_ = q.execute("quit", nil, nil, nil)
	select {
	case <-m.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fail(fmt.Errorf("%s did not quit after saving", Binary))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

var _ vmm.LiveSaver = (*Machine)(nil)

// ForkState saves the running machine for forks without ending it: QMP
// stop, blockdev-snapshot-sync of the root drive onto newTop (mode
// existing: the host made it over the disk file; the disk file becomes its
// read-only backing, frozen as the guest left it), migrate to path, swap,
// cont. cont after a completed migration takes the disk back from the
// migration (QEMU inactivates the block nodes when a migration completes;
// qmp_cont reactivates them, checked in QEMU 7.2's monitor/qmp-cmds.c).
// QEMU reopens a disk file by its name whenever it stops or starts needing
// to write it (-drive's auto-read-only: the frozen disk when it becomes a
// backing file, the new top when the migration lets go of it and when cont
// takes it back), so the disk file must keep its name until the snapshot
// and newTop its name for as long as QEMU runs: swap must give newTop a
// second name rather than move it. (With auto-read-only=off QEMU keeps
// every file open for writing instead, and the second fork's cont failed on
// its own write locks.)
func (m *Machine) ForkState(ctx context.Context, path, newTop string, swap func() error) (err error) {
	if !m.cfg.Saveable || m.cfg.DiskMode != vmm.DiskOverlay || m.cfg.Restore != nil && !m.cfg.Restore.Writable {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "machine %s cannot be saved live (no control socket or no kept disk)", m.cfg.ID)
	}
	if m.cmd == nil {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "machine %s is not running", m.cfg.ID)
	}
	fail := m.saveFailure("save the running machine")
	f, q, err := m.stopForSave(ctx, path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	defer q.Close()
	// From here on the guest must run again, whatever fails.
	frozen := false
	defer func() {
		if frozen {
			if serr := swap(); serr != nil {
				err = errors.Join(err, fail(fmt.Errorf("put the new disk in place: %w", serr)))
			}
		}
		if cerr := q.execute("cont", nil, nil, nil); cerr != nil {
			err = errors.Join(err, fail(fmt.Errorf("cont: %w", cerr)))
		}
	}()
	if err := q.execute("blockdev-snapshot-sync", map[string]string{
		"device": "root", "snapshot-file": newTop, "format": "qcow2", "mode": "existing",
	}, nil, nil); err != nil {
		return fail(err)
	}
	frozen = true
	// No fsync: the forks' QEMUs read the state at once from the page
	// cache, and a crash before they are made leaves no fork to restore it
	// (they are removed as unfinished).
	if err := m.migrateTo(ctx, q, f, false); err != nil {
		return fail(err)
	}
	return nil
}

func (m *Machine) saveFailure(what string) func(error) error {
	return func(err error) error {
		return errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeVMMFailed, "%s: %s", what, m.vmmLogTail())
	}
}

// stopForSave creates the state file at path, connects to QMP and stops
// the guest's CPUs; the caller closes both.
func (m *Machine) stopForSave(ctx context.Context, path string) (*os.File, *qmpClient, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	q, err := dialQMP(ctx, filepath.Join(m.cfg.RuntimeDir, qmpSocket))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := q.execute("stop", nil, nil, nil); err != nil {
		q.Close()
		f.Close()
		return nil, nil, err
	}
	return f, q, nil
}

// migrateTo writes the stopped machine's state into f (migrate fd:) and
// returns once it is written (durable: on disk). QEMU throttles a migration to 128 MiB/s by
// default, meant for a live machine sharing a network link; this one is
// stopped and goes to a local file, so the throttle is lifted (it made a
// save take ~300 ms longer). The file travels as a descriptor over QMP
// (getfd), so the seccomp sandbox's spawn=deny stays on.
func (m *Machine) migrateTo(ctx context.Context, q *qmpClient, f *os.File, durable bool) error {
	if err := q.execute("migrate-set-parameters", map[string]any{"max-bandwidth": unthrottled}, nil, nil); err != nil {
		return err
	}
	if err := q.execute("getfd", map[string]string{"fdname": "pyro-state"}, nil, f); err != nil {
		return err
	}
	if err := q.execute("migrate", map[string]string{"uri": "fd:pyro-state"}, nil, nil); err != nil {
		return err
	}
	for {
		var st struct {
			Status string `json:"status"`
			Desc   string `json:"error-desc"`
		}
		if err := q.execute("query-migrate", nil, &st, nil); err != nil {
			return err
		}
		switch st.Status {
		case "completed":
			if !durable {
				return nil
			}
			return f.Sync()
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", st.Status, st.Desc)
		}
		select {
		case <-time.After(migratePoll):
		case <-m.exited:
			return fmt.Errorf("%s exited while saving", Binary)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
