package env

import (
	"context"

	"github.com/pyrovm/pyro/internal/env/oci"
)

// Installed says, without building or pulling anything, whether name is
// usable as it is: the environment when it is; otherwise stale is true
// when an install exists that cannot be used as is (another agent, an older
// recipe or layout, damaged; the next run rebuilds or re-converts it), and
// why says what is wrong in words that follow the name. Custom
// environments (env build) are looked up first, as Get does.
func (s *Store) Installed(ctx context.Context, name string) (e *Environment, stale bool, why string, err error) {
	if err := s.init(); err != nil {
		return nil, false, "", err
	}
	ag, _, err := s.agent(ctx)
	if err != nil {
		return nil, false, "", err
	}
	if rec, ok := s.readBuilt(name); ok {
		in, why := s.pickBuild(digestHex(rec.Digest), ag.sha256)
		if in != nil {
			return in.environment(), false, "", nil
		}
		return nil, why != "is not built", why, nil
	}
	if !IsCatalogName(name) {
		ref, err := oci.Parse(name)
		if err != nil {
			return nil, false, "", err
		}
		in, why := s.imageFor(ref, ag.sha256)
		if in != nil {
			return in.environment(), false, "", nil
		}
		return nil, why != "is not pulled", why, nil
	}
	entry, err := lookup(name)
	if err != nil {
		return nil, false, "", err
	}
	in, why := s.pick(entry, ag.sha256, false)
	if in != nil {
		return in.environment(), false, "", nil
	}
	return nil, why != "is not installed", why, nil
}
