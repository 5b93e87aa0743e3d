package workspace

import (
	"context"
	"encoding/json"
	"os"
	"time"
)

// tidyEvery is how stale the last pass over every workspace may be when a
// call targets one workspace. The pass costs each workspace's lock, record
// and supervisor check (about half a millisecond each here), which a
// host with 50 workspaces would otherwise pay on every exec; the called
// workspace itself is always checked (Resolve).
const tidyEvery = 2 * time.Second

// tidyStamp is $STATE/workspaces.tidied: when a pass over every workspace ran and
// the earliest TTL it saw still ahead. It only saves work: a missing or
// unreadable stamp means a full pass.
type tidyStamp struct {
	At  time.Time `json:"at"`
	Due time.Time `json:"due,omitzero"` // zero: no TTL ahead
}

// tidyStampPath is beside the workspaces' dir, which holds only workspaces.
func (m *Manager) tidyStampPath() string { return m.root + ".tidied" }

// fresh reports a pass recent enough that no TTL has come due since.
func (s tidyStamp) fresh(now time.Time) bool {
	age := now.Sub(s.At)
	return age >= 0 && age < tidyEvery && (s.Due.IsZero() || now.Before(s.Due))
}

func (m *Manager) readTidyStamp() (tidyStamp, bool) {
	var s tidyStamp
	b, err := os.ReadFile(m.tidyStampPath())
	return s, err == nil && json.Unmarshal(b, &s) == nil
}

// writeTidyStamp records a finished pass. A cache, not state: written in
// place, without a temporary that a killed process could leave behind or an
// fsync; a torn, lost or interleaved stamp fails to parse and costs one
// extra pass.
func (m *Manager) writeTidyStamp(s tidyStamp) {
	b, _ := json.Marshal(s)
	_ = os.WriteFile(m.tidyStampPath(), b, 0o600)
}

// tidyStale makes the next call do a full pass: a TTL was set that the
// stamp's Due may not cover.
func (m *Manager) tidyStale() { _ = os.Remove(m.tidyStampPath()) }

// TidyDue is what a call targeting one workspace does first: Tidy, unless a
// pass ran less than tidyEvery ago and no TTL came due since. Then only
// the workspaces the call resolves are checked, when it resolves them.
func (m *Manager) TidyDue(ctx context.Context, now time.Time) (recovered, expired []string, err error) {
	if s, ok := m.readTidyStamp(); ok && s.fresh(now) {
		m.checkResolved.Store(true)
		return nil, nil, nil
	}
	return m.Tidy(ctx, now)
}

// checkTarget does for one resolved workspace what a skipped pass would
// have: finish what a dead process left half done, and act on a TTL that
// passed. It reports whether the workspace may have changed (re-read it).
func (m *Manager) checkTarget(r *Record) bool {
	if !m.checkResolved.Load() {
		return false
	}
	if _, done := m.checked.LoadOrStore(r.ID, true); done {
		return false // a call resolves its workspace several times: once is enough
	}
	ctx := context.Background() // recovery must finish even if the call is canceled
	changed := m.recoverOne(ctx, m.paths(r.ID))
	if exp := r.ExpiresAt(); !exp.IsZero() && !time.Now().Before(exp) {
		_, _, _ = m.Tidy(ctx, time.Now())
		changed = true
	}
	return changed
}
