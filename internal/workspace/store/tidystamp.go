package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/ident"
)

// TidyEvery is how stale the last pass over every workspace may be when a
// call targets one workspace. The pass costs each workspace's lock, record
// and supervisor check (about half a millisecond each here), which a
// host with 50 workspaces would otherwise pay on every exec; the called
// workspace itself is always checked (Resolve).
const TidyEvery = 2 * time.Second

// TidyStamp is $STATE/workspaces.tidied: when a pass over every workspace ran and
// the earliest TTL it saw still ahead. It only saves work: a missing or
// unreadable stamp means a full pass.
type TidyStamp struct {
	At  time.Time `json:"at"`
	Due time.Time `json:"due,omitzero"` // zero: no TTL ahead
}

// TidyStampPath is $STATE/workspaces.tidied for the workspaces' dir root
// (beside it: that dir holds only workspaces).
func TidyStampPath(root string) string { return root + ".tidied" }

// Fresh reports a pass recent enough that no TTL has come due since.
func (s TidyStamp) Fresh(now time.Time) bool {
	age := now.Sub(s.At)
	return age >= 0 && age < TidyEvery && (s.Due.IsZero() || now.Before(s.Due))
}

func ReadTidyStamp(root string) (TidyStamp, bool) {
	var s TidyStamp
	b, err := os.ReadFile(TidyStampPath(root))
	return s, err == nil && json.Unmarshal(b, &s) == nil
}

// WriteTidyStamp records a finished pass. A cache, not state: written in
// place, without a temporary that a killed process could leave behind or an
// fsync; a torn, lost or interleaved stamp fails to parse and costs one
// extra pass.
func WriteTidyStamp(root string, s TidyStamp) {
	b, _ := json.Marshal(s)
	_ = os.WriteFile(TidyStampPath(root), b, 0o600)
}

// Include notes r's TTL in the stamp's Due (the earliest still ahead).
func (s *TidyStamp) Include(r *Record) {
	if exp := r.ExpiresAt(); !exp.IsZero() && (s.Due.IsZero() || exp.Before(s.Due)) {
		s.Due = exp
	}
}

// QuietPass is a pass over every workspace under root (their disks named
// diskFile, the backend's) that finds nothing to do, each one Quiet: its
// stamp, ok true. A workspace that is not quiet fails it, for package
// workspace's Tidy to handle.
func QuietPass(root, diskFile string, now time.Time) (TidyStamp, bool) {
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return TidyStamp{}, false
	}
	stamp := TidyStamp{At: now}
	for _, e := range entries {
		if !e.IsDir() || !ident.ValidID(e.Name()) {
			continue
		}
		r, quiet := Quiet(Paths{Dir: filepath.Join(root, e.Name()), DiskFile: diskFile}, now)
		if !quiet {
			return TidyStamp{}, false
		}
		stamp.Include(r)
	}
	return stamp, true
}
