package store

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/ident"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
)

// Quiet reports whether a pass over every workspace (package workspace's
// Tidy) has nothing to do at p as of now, with its record: no TTL passed,
// nothing a dead process left half done (a create, a reset, a snapshot, an
// export, a record write), and a supervisor alive exactly when the record
// says running (a paused one's saved machine still valid). It takes no
// lock and errs toward "not quiet": a workspace in the middle of a call
// is for Tidy to look at. Tidy skips what is quiet, and a pass that finds
// every workspace quiet may be recorded without it (the CLI's fast path).
func Quiet(p Paths, now time.Time) (*Record, bool) {
	r, err := ReadRecord(p)
	if err != nil {
		return nil, false
	}
	return r, QuietAs(p, r, now)
}

// QuietAs is Quiet for r, the record just read from p.
func QuietAs(p Paths, r *Record, now time.Time) bool {
	if _, err := os.Stat(p.Lock()); err != nil || r.Creating || p.ResetInterrupted() {
		return false
	}
	if exp := r.ExpiresAt(); !exp.IsZero() && !now.Before(exp) {
		return false
	}
	if hasEntries(p.OutputsDir(), nil) || hasEntries(p.SnapshotDir(), isSnapshotTemp) || hasEntries(p.Dir, isRecordTemp) {
		return false
	}
	supervised := supervisorAlive(p.Supervisor())
	switch r.State {
	case StateRunning:
		return supervised
	case StateStopped:
		return !supervised && !exists(p.PauseDir())
	case StatePaused:
		return !supervised && (!exists(p.PauseDir()) || wire.PausedValid(p.PauseDir(), p.Disk()))
	}
	return false
}

func supervisorAlive(infoPath string) bool {
	info, err := wire.ReadInfo(infoPath)
	return err == nil && ident.Alive(info.Pid, info.PidStart)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// hasEntries reports whether dir holds an entry match accepts (any, for a
// nil match).
func hasEntries(dir string, match func(name string) bool) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if match == nil || match(e.Name()) {
			return true
		}
	}
	return false
}

func isSnapshotTemp(name string) bool {
	return strings.HasSuffix(name, SnapshotTmpSuffix) || strings.HasSuffix(name, SnapshotTmpSuffix+ExtractDirSuffix)
}

// isRecordTemp matches the temporaries of record writes (fsutil.ReplaceJSON
// and WriteJSONAtomic write ".workspace.json*" beside the record).
func isRecordTemp(name string) bool {
	return strings.HasPrefix(name, "."+filepath.Base(Paths{}.Record()))
}
