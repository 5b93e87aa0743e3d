package env

import (
	"context"
	"errors"
	"os"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// build makes a new version of e: kernel (cached or built), base tarball
// (cached or bootstrapped; always bootstrapped with force), then the image.
// Caller holds the environment lock.
func (s *Store) build(ctx context.Context, e catalogEntry, ag agentInfo, force bool) (*Environment, error) {
	// Check every host tool this build will need before starting any of it.
	var tools []hostTool
	hash, _, kerr := s.currentKernelHash(ctx)
	switch {
	case kerr != nil:
		if _, ok := s.newestCachedKernel(); !ok {
			return nil, kerr
		}
	case s.compileKernelFn == nil:
		if _, ok := s.cachedKernel(hash); !ok {
			tools = append(tools, kernelTools...)
		}
	}
	_, baseCached := s.cachedBase(e)
	if force || !baseCached {
		tools = append(tools, baseTools...)
	}
	tools = append(tools, imageTools...)
	if err := checkTools(tools...); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeEnvironmentBuild,
			"building environment images needs root (device nodes and file owners in the image): run \"pyro env pull %s\" as root", e.Name)
	}

	k, err := s.ensureKernel(ctx, false)
	if err != nil {
		return nil, err
	}
	basePath, rec, err := s.ensureBase(ctx, e, force)
	if err != nil {
		return nil, err
	}
	env, err := s.buildImage(ctx, e, k, basePath, rec, ag)
	if errors.Is(err, errBaseCorrupt) {
		s.progress(ctx, Event{Stage: "debootstrap", Message: "cached base of " + e.Name + " is corrupt: bootstrapping it again"})
		if basePath, rec, err = s.ensureBase(ctx, e, true); err != nil {
			return nil, err
		}
		env, err = s.buildImage(ctx, e, k, basePath, rec, ag)
	}
	if errors.Is(err, errBaseCorrupt) {
		return nil, buildErr(err, "image %s", e.Name)
	}
	return env, err
}

// verifyLocked re-hashes kernel and image of in. A corrupt kernel is rebuilt
// in place (and the manifest updated to the new kernel digest); a corrupt
// image becomes a new version and the damaged one is removed. Caller holds
// the environment lock.
func (s *Store) verifyLocked(ctx context.Context, e catalogEntry, in *install, ag agentInfo) (*Environment, error) {
	m := in.manifest
	k, ok := s.cachedKernel(m.Kernel.ConfigHash)
	intact := false
	if ok {
		var err error
		if intact, err = s.kernelIntact(ctx, k); err != nil {
			return nil, err
		}
	}
	if !intact {
		cur, _, err := s.currentKernelHash(ctx)
		if err != nil || cur != m.Kernel.ConfigHash {
			// That kernel cannot be rebuilt any more: a new version with the current one.
			s.progress(ctx, Event{Stage: "verify", Message: "guest kernel of " + e.Name + " is damaged: building a new version"})
			return s.rebuild(ctx, e, in, ag)
		}
		if k, err = s.ensureKernel(ctx, true); err != nil {
			return nil, err
		}
	}
	if k != m.Kernel {
		m.Kernel = k
		if err := writeManifest(s.root, in.dir, m); err != nil {
			return nil, buildErr(err, "updating the manifest of %s", e.Name)
		}
	}

	s.progress(ctx, Event{Stage: "verify", Message: "checking " + e.Name + " " + m.Version + " root filesystem"})
	sum, _, err := sha256File(ctx, m.Rootfs.Path, func(done, total int64) {
		s.progress(ctx, Event{Stage: "verify", Message: "hashing root filesystem", Done: done, Total: total})
	})
	if ctx.Err() != nil {
		return nil, ctxError(ctx, "verifying "+e.Name)
	}
	if err != nil || sum != m.Rootfs.SHA256 {
		s.progress(ctx, Event{Stage: "verify", Message: "root filesystem of " + e.Name + " " + m.Version + " is damaged: rebuilding"})
		return s.rebuild(ctx, e, in, ag)
	}
	s.progress(ctx, Event{Stage: "verify", Message: e.Name + " " + m.Version + " is intact"})
	return in.environment(), nil
}

// rebuild replaces a damaged install with a new version built from the
// cached base, then removes the damaged one.
func (s *Store) rebuild(ctx context.Context, e catalogEntry, in *install, ag agentInfo) (*Environment, error) {
	if ag.sha256 == "" {
		return nil, errNoAgent()
	}
	env, err := s.build(ctx, e, ag, false)
	if err != nil {
		return nil, err
	}
	removeTree(in.dir)
	return env, nil
}
