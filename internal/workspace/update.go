package workspace

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
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
			return nil, errdefs.New(errdefs.ErrAlreadyExists, "name_taken", "a workspace named %q already exists", *name)
		}
	}
	if err := ValidateLabels(set); err != nil {
		return nil, err
	}
	p, rec, unlock, err := m.locked(r.ID)
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
	return rec, writeRecord(p, rec)
}

// ReapExpired deletes every workspace whose TTL has passed. Every pyro
// process calls it before workspace operations, so whichever notices first
// does the work; the lock in Delete keeps two from colliding.
func (m *Manager) ReapExpired(ctx context.Context, now time.Time) ([]string, error) {
	recs, err := m.scan()
	if err != nil {
		return nil, err
	}
	var reaped []string
	for _, r := range recs {
		if exp := r.ExpiresAt(); exp.IsZero() || now.Before(exp) {
			continue
		}
		if _, err := m.Delete(ctx, r.ID); err != nil && !errdefs.IsNotFound(err) {
			m.log.Warn("reaping expired workspace", "workspace", r.ID, "err", err)
			continue
		}
		reaped = append(reaped, r.ID)
	}
	return reaped, nil
}
