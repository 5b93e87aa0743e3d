package workspace

import (
	"context"

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
