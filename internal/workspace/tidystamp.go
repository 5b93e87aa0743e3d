package workspace

import (
	"context"
	"os"
	"time"

	"github.com/pyrovm/pyro/internal/workspace/store"
)

// tidyStale makes the next call do a full pass: a TTL was set that the
// stamp's Due may not cover.
func (m *Manager) tidyStale() { _ = os.Remove(store.TidyStampPath(m.root)) }

// TidyDue is what a call targeting one workspace does first: Tidy, unless a
// pass ran less than store.TidyEvery ago and no TTL came due since. Then only
// the workspaces the call resolves are checked, when it resolves them.
func (m *Manager) TidyDue(ctx context.Context, now time.Time) (recovered, expired []string, err error) {
	if s, ok := store.ReadTidyStamp(m.root); ok && s.Fresh(now) {
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
