package workspace

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// Update changes a workspace's name and labels. name nil keeps it; an empty
// name clears it.
func (m *Manager) Update(ctx context.Context, ref string, name *string, set map[string]string, clear []string) (*Record, error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return nil, err
	}
	if name != nil && *name != "" {
		if err := ValidateName(*name); err != nil {
			return nil, err
		}
		if other, err := m.Resolve(*name); err == nil && other.ID != r.ID {
			return nil, errdefs.New(errdefs.ErrAlreadyExists, errdefs.CodeNameTaken, "a workspace named %q already exists", *name)
		}
	}
	if err := ValidateLabels(set); err != nil {
		return nil, err
	}
	p, rec, unlock, err := m.lockedRecord(r.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if name != nil {
		rec.Name = *name
	}
	for k, v := range set {
		if rec.Labels == nil {
			rec.Labels = map[string]string{}
		}
		rec.Labels[k] = v
	}
	for _, k := range clear {
		delete(rec.Labels, k)
	}
	rec.State = m.liveState(ctx, rec)
	return rec, store.WriteRecord(p, rec)
}

// Lifecycle is a change of a workspace's TTL and idle pause; nil fields
// are kept.
type Lifecycle struct {
	// TTLSeconds sets the TTL, counted from now (0: no expiry).
	TTLSeconds       *int
	TTLAction        *string // TTLDelete or TTLPause
	IdlePauseSeconds *int    // 0: never pause by itself
}

// ValidateLifecycle checks TTL and idle pause values.
func ValidateLifecycle(l Lifecycle) error {
	switch {
	case l.TTLSeconds != nil && *l.TTLSeconds < 0:
		return errdefs.InvalidArgument("ttl_seconds", "%d is negative; use 0 for no expiry", *l.TTLSeconds)
	case l.TTLAction != nil && *l.TTLAction != "" && *l.TTLAction != TTLDelete && *l.TTLAction != TTLPause:
		return errdefs.InvalidArgument("ttl_action", "%q is not one of %s, %s", *l.TTLAction, TTLDelete, TTLPause)
	case l.IdlePauseSeconds != nil && (*l.IdlePauseSeconds < 0 || *l.IdlePauseSeconds > MaxIdlePauseSeconds):
		return errdefs.InvalidArgument("idle_pause_seconds", "%d is out of range [0, %d]; 0 turns the idle pause off", *l.IdlePauseSeconds, MaxIdlePauseSeconds)
	}
	return nil
}

// MaxIdlePauseSeconds bounds the idle pause (30 days).
const MaxIdlePauseSeconds = 30 * 24 * 3600

// UpdateLifecycle changes the TTL (counted from now: it extends or shortens
// the workspace's life), its action, and the idle pause, which a running
// workspace's supervisor takes at once.
func (m *Manager) UpdateLifecycle(ctx context.Context, ref string, l Lifecycle) (*Record, error) {
	if err := ValidateLifecycle(l); err != nil {
		return nil, err
	}
	p, rec, unlock, err := m.lockedRecord(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if l.TTLSeconds != nil {
		rec.TTLSeconds = *l.TTLSeconds
		rec.LastActivityAt = time.Now().UTC() // the TTL counts from here
		m.tidyStale()
	}
	if l.TTLAction != nil {
		rec.TTLAction = *l.TTLAction
		if rec.TTLAction == TTLDelete {
			rec.TTLAction = ""
		}
	}
	if l.IdlePauseSeconds != nil {
		rec.IdlePauseSeconds = *l.IdlePauseSeconds
		if err := m.setIdle(ctx, p, rec.IdlePauseSeconds); err != nil {
			return nil, err
		}
	}
	rec.State = m.liveState(ctx, rec)
	return rec, store.WriteRecord(p, rec)
}
