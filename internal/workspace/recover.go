package workspace

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/gofrs/flock"

	"github.com/pyrovm/pyro/internal/vm"
)

// halfCreatedAge is how old a workspace dir without a record must be before
// Recover removes it: younger ones may be a create that just began.
const halfCreatedAge = time.Minute

// Recover finishes what pyro processes that died (kill -9, crash, power
// loss) left half done, so that nothing leaks and no workspace is left in
// between. Every workspace call runs it first. A workspace whose lock is
// held is being worked on and is left alone.
//   - A create that never returned is undone: the caller never got an id.
//   - A reset that never returned is rolled back, as a failed one is: the
//     new VM is stopped and the disk from before the reset is put back.
//
// It returns the ids it acted on.
func (m *Manager) Recover(ctx context.Context) (recovered []string, err error) {
	entries, err := os.ReadDir(m.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() || !vm.ValidID(e.Name()) {
			continue
		}
		if m.recoverOne(ctx, m.paths(e.Name())) {
			recovered = append(recovered, e.Name())
		}
	}
	return recovered, nil
}

func (m *Manager) recoverOne(ctx context.Context, p Paths) bool {
	l := flock.New(p.Lock())
	got, err := l.TryLock()
	if err != nil || !got {
		return false // busy, or not ours to judge
	}
	defer l.Unlock()
	rec, err := readRecord(p)
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
	if _, err := os.Stat(p.PreResetDisk()); err == nil {
		m.log.Warn("rolling back a reset whose process died", "workspace", rec.ID)
		m.stopSupervisor(ctx, p)
		m.rollbackReset(p)
		rec.State = StateStopped
		if err := writeRecord(p, rec); err != nil {
			m.log.Warn("recording the rolled back reset", "workspace", rec.ID, "err", err)
		}
		return true
	}
	return false
}
