package env

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pyrovm/pyro/internal/env/oci"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// The environment registry: a registry prefix where a team publishes the
// catalog ("pyro env push debian:12 REGISTRY/debian:12", one tag per
// catalog name, REGISTRY/<name>). A catalog name missing from the cache
// resolves from it first; the guest kernel, which rides in every
// published environment, too.

// RegistryEnv names the environment registry.
const RegistryEnv = "PYRO_ENV_REGISTRY"

// RegistryFromConfig returns the environment registry: PYRO_ENV_REGISTRY,
// else the first line that is not blank or a comment of
// $XDG_CONFIG_HOME/pyro/env-registry (default ~/.config/pyro/env-registry),
// else of /etc/pyro/env-registry; "" when none is set. The value is
// checked: REGISTRY/debian:12 must be a registry reference.
func RegistryFromConfig() (string, error) {
	if v := strings.TrimSpace(os.Getenv(RegistryEnv)); v != "" {
		return CheckRegistry(v, RegistryEnv)
	}
	for _, p := range registryFiles() {
		if v, ok := firstLine(p); ok {
			return CheckRegistry(v, p)
		}
	}
	return "", nil
}

func registryFiles() []string {
	var out []string
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		out = append(out, filepath.Join(x, "pyro", "env-registry"))
	} else if home, err := os.UserHomeDir(); err == nil {
		out = append(out, filepath.Join(home, ".config", "pyro", "env-registry"))
	}
	return append(out, "/etc/pyro/env-registry")
}

func firstLine(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			return l, true
		}
	}
	return "", false
}

// CheckRegistry validates and normalizes a registry prefix; from names
// where it was set, for the error.
func CheckRegistry(v, from string) (string, error) {
	v = strings.TrimRight(strings.TrimPrefix(strings.TrimPrefix(v, "https://"), "http://"), "/")
	// The host must be explicit: a bare "team" would silently mean Docker Hub.
	host, _, _ := strings.Cut(v, "/")
	explicit := strings.ContainsAny(host, ".:") || host == "localhost"
	if r, err := oci.Parse(v + "/debian:12"); err != nil || r.Kind != oci.KindRegistry || !explicit {
		return "", errdefs.InvalidArgument("env_registry",
			"%s: %q is not a registry prefix: use HOST[:PORT][/PATH], e.g. registry.example.com/pyro or localhost:5000/pyro", from, v)
	}
	return v, nil
}

// registryRef is where catalog entry name is published.
func (s *Store) registryRef(name string) (oci.Ref, error) {
	return oci.Parse(s.opts.EnvRegistry + "/" + name)
}

// pullPublished installs catalog entry e from the environment registry.
// Caller holds the environment lock.
func (s *Store) pullPublished(ctx context.Context, e catalogEntry, ag agentInfo) (*Environment, error) {
	ref, err := s.registryRef(e.Name)
	if err != nil {
		return nil, err
	}
	s.progress(ctx, Event{Stage: "pull", Message: "pulling " + e.Name + " from " + ref.Name})
	a, err := s.getArtifact(ctx, ref)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errdefs.New(errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing,
			"%s is an ordinary image, not a published pyro environment (publish one with \"pyro env push %s %s\")", ref.Name, e.Name, ref.Name)
	}
	pm, err := checkArtifact(a, ref, &e, ag)
	if err != nil {
		return nil, err
	}
	return s.installArtifact(ctx, a, ref, pm, &e)
}

// pullOrBuild is the catalog's way to a missing environment: the
// environment registry first (when set and not force: force means fresh
// packages), then the local build. Caller holds the environment lock.
func (s *Store) pullOrBuild(ctx context.Context, e catalogEntry, ag agentInfo, force bool) (*Environment, error) {
	if s.opts.EnvRegistry == "" || force {
		return s.build(ctx, e, ag, force)
	}
	env, perr := s.pullPublished(ctx, e, ag)
	if perr == nil || ctx.Err() != nil {
		return env, perr
	}
	s.progress(ctx, Event{Stage: "pull", Message: fmt.Sprintf("not from the registry (%v): building %s locally", perr, e.Name)})
	env, berr := s.build(ctx, e, ag, force)
	if berr == nil {
		return env, nil
	}
	return nil, bothFailed(e.Name, perr, berr)
}

// bothFailed: neither the registry nor the local build gave the
// environment. The build's code stays (host_tool_missing, say): that is
// what the user can fix on this host.
func bothFailed(name string, perr, berr error) error {
	var be *errdefs.Error
	if !errors.As(berr, &be) {
		return errors.Join(perr, berr)
	}
	e := errdefs.New(be.Class, be.Code,
		"%s is neither pullable from the environment registry (%v) nor buildable here (%s): fix either, e.g. publish it with \"pyro env push %s REGISTRY/%s\" from a host that has it",
		name, perr, be.Message, name, name)
	e.Cause = errors.Join(perr, berr)
	return e
}

// publishedKernel takes the guest kernel from the environment registry, for
// a host that cannot build it (why): from the first catalog environment
// published there whose kernel was built from this pyro's config fragment.
// ok is false when no registry is set.
func (s *Store) publishedKernel(ctx context.Context, why error) (KernelInfo, bool, error) {
	if s.opts.EnvRegistry == "" {
		return KernelInfo{}, false, nil
	}
	var errs []error
	for _, e := range []string{"debian:12-base", "debian:12", "debian:12-build"} {
		ref, err := s.registryRef(e)
		if err != nil {
			return KernelInfo{}, true, err
		}
		a, err := s.getArtifact(ctx, ref)
		if err != nil || a == nil {
			if ctx.Err() != nil {
				return KernelInfo{}, true, ctxError(ctx, "pulling the guest kernel")
			}
			errs = append(errs, fmt.Errorf("%s: %v", ref.Name, errOr(err, "not a pyro environment")))
			continue
		}
		if got := a.Annotations[kernelFragmentAnnotation]; got != kernelFragmentHash() {
			errs = append(errs, fmt.Errorf("%s: kernel built from another pyro kernel config (%q)", ref.Name, got))
			continue
		}
		// Another agent or image layout does not matter: only the kernel is taken.
		pm, err := parseArtifact(a, ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		k, err := s.landKernel(ctx, a, ref, pm.Kernel)
		if err != nil {
			return KernelInfo{}, true, err
		}
		return k, true, nil
	}
	e := errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
		"this host cannot build the guest kernel (%v) and the environment registry %s has none for this pyro (%v): publish one with \"pyro env push debian:12-base %s/debian:12-base\"",
		why, s.opts.EnvRegistry, errors.Join(errs...), s.opts.EnvRegistry)
	e.Cause = why
	return KernelInfo{}, true, e
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}
