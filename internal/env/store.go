package env

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Options configure a Store.
type Options struct {
	CacheDir  string      // empty: DefaultCacheDir()
	AgentPath string      // host path to the static guest agent binary
	Progress  func(Event) // may be nil; called from the building goroutine
	// InsecureRegistries may be reached over plain HTTP (host[:port]).
	InsecureRegistries []string
	// PullAllowed, when set, decides which references Ensure may pull on
	// first use (the normalized reference); nil allows every one. Explicit
	// pulls (Pull) are not asked.
	PullAllowed func(ref string) bool
	// EnvRegistry is a registry prefix (host[:port][/path]) where the
	// catalog environments are published (publish.go): a catalog name
	// missing from the cache is pulled from it before building locally.
	EnvRegistry string
	// MaxUnpackedBytes and MaxUnpackedFiles bound what an image's layers
	// may unpack to; 0 = PYRO_MAX_UNPACKED_MIB / PYRO_MAX_UNPACKED_FILES,
	// else DefaultMaxUnpackedBytes / DefaultMaxUnpackedFiles.
	MaxUnpackedBytes, MaxUnpackedFiles int64
}

// Event reports progress of long work.
type Event struct {
	Stage   string `json:"stage"` // "kernel", "debootstrap", "image", "verify", "env"
	Message string `json:"message"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"` // 0 = unknown
}

// Info is one catalog entry and its installed state.
type Info struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Installed   bool     `json:"installed"`
	Version     string   `json:"version,omitempty"`
	Packages    []string `json:"packages"` // the catalog's package list
	RootfsSize  int64    `json:"rootfs_size,omitempty"`
	DiskUsage   int64    `json:"disk_usage,omitempty"` // bytes the sparse image really takes
	Source      string   `json:"source"`               // "debian" (catalog), "oci", "artifact" (a published environment) or "build"
	Digest      string   `json:"digest,omitempty"`     // oci: the image's manifest digest; build: the definition's key
	Base        string   `json:"base,omitempty"`       // build: the environment it was built from
	Steps       []string `json:"steps,omitempty"`      // build: its steps
}

// Environment is an installed, valid environment version.
type Environment struct {
	Manifest   *Manifest
	Dir        string
	KernelPath string
	RootfsPath string
}

// Store is the environment cache. Safe for concurrent use, also across
// processes (file locks).
type Store struct {
	opts    Options
	root    string
	rootErr error

	mu       sync.Mutex
	agentKey agentCacheKey
	agentSum string

	// Test seams: nil means the real thing.
	kernelVersionFn func(ctx context.Context) (string, error)
	compileKernelFn func(ctx context.Context, dir string) (vmlinux, release string, err error)
}

// NewStore returns a Store over opts.CacheDir (or the default cache dir).
func NewStore(opts Options) *Store {
	s := &Store{opts: opts, kernelVersionFn: kernelSourceVersion}
	dir := opts.CacheDir
	if dir == "" {
		dir, s.rootErr = DefaultCacheDir()
	}
	if s.rootErr == nil {
		s.root, s.rootErr = filepath.Abs(dir)
	}
	if s.rootErr != nil {
		s.rootErr = errdefs.Wrap(s.rootErr, errdefs.ErrFailedPrecondition, errdefs.CodeInternal,
			"cannot determine the cache directory: set PYRO_CACHE_DIR")
	}
	return s
}

// DefaultCacheDir resolves PYRO_CACHE_DIR, else $XDG_CACHE_HOME/pyro (when
// absolute), else ~/.cache/pyro.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("PYRO_CACHE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "pyro"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "pyro"), nil
}

// CacheDir is the resolved cache root.
func (s *Store) CacheDir() string { return s.root }

// Registry is Options.EnvRegistry: where catalog environments are published.
func (s *Store) Registry() string { return s.opts.EnvRegistry }

func (s *Store) init() error { return s.rootErr }

func (s *Store) progress(ctx context.Context, ev Event) {
	if s.opts.Progress != nil {
		s.opts.Progress(ev)
	}
	if fn, ok := ctx.Value(progressKey{}).(func(Event)); ok {
		fn(ev)
	}
}

type progressKey struct{}

// WithProgress returns a context whose store calls also report progress to
// fn (a per-call listener, such as one MCP request's progress token).
func WithProgress(ctx context.Context, fn func(Event)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

func (s *Store) lockPath(name string) string { return filepath.Join(s.root, "locks", name+".lock") }
func (s *Store) logsDir() string             { return filepath.Join(s.root, "logs") }

// List returns the whole catalog with installed state.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	if err := s.init(); err != nil {
		return nil, err
	}
	ag, _, err := s.agent(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	out := make([]Info, 0, len(catalog))
	for _, e := range catalog {
		info := Info{Name: e.Name, Description: e.Description, Packages: append([]string(nil), e.Include...), Source: SourceDebian}
		if in, _ := s.pick(e, ag.sha256, false); in != nil {
			info.Installed = true
			info.Version = in.version
			info.RootfsSize = in.manifest.Rootfs.Size
			info.DiskUsage = in.manifest.Rootfs.DiskUsage
		}
		out = append(out, info)
	}
	out = append(out, s.listImages(ag.sha256)...)
	return append(out, s.listBuilt(ag.sha256)...), nil
}

// Get returns the installed environment: newest valid version built from
// the current recipe and (when Options.AgentPath is set) the current agent.
func (s *Store) Get(ctx context.Context, name string) (*Environment, error) {
	if rec, ok := s.readBuilt(name); ok {
		return s.builtEnv(ctx, rec)
	}
	if !IsCatalogName(name) {
		in, err := s.getImage(ctx, name, false)
		if err != nil {
			return nil, err
		}
		return in.environment(), nil
	}
	e, err := lookup(name)
	if err != nil {
		return nil, err
	}
	if err := s.init(); err != nil {
		return nil, err
	}
	ag, _, err := s.agent(ctx)
	if err != nil {
		return nil, err
	}
	in, why := s.pick(e, ag.sha256, false)
	if in == nil {
		return nil, errNotInstalled(name, why)
	}
	return in.environment(), nil
}

// Ensure returns the installed environment, building it when missing or
// built with another agent. An install that appears while waiting for
// another process's build is reused as is.
func (s *Store) Ensure(ctx context.Context, name string) (*Environment, error) {
	if rec, ok := s.readBuilt(name); ok {
		return s.builtEnv(ctx, rec)
	}
	if !IsCatalogName(name) {
		return s.ensureImage(ctx, name)
	}
	if _, err := lookup(name); err != nil {
		return nil, err
	}
	env, err := s.Get(ctx, name)
	if err == nil || errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		return env, err
	}
	return s.pull(ctx, name, false, false)
}

// Pull builds the environment. When a current install exists and !force it
// is verified instead (sha256 of kernel and image) and repaired on mismatch.
// force re-runs mmdebstrap (fresh packages) and makes a new image; the
// kernel is reused when intact (it is a function of config and source).
func (s *Store) Pull(ctx context.Context, name string, force bool) (*Environment, error) {
	return s.PullWith(ctx, name, PullOptions{Force: force})
}

// PullWith is Pull with options. A name that is not in the catalog is an
// image reference: resolved (registry, OCI layout or docker archive),
// its layers fetched and converted; an unchanged digest already converted
// with the current agent is a no-op unless opts.Force.
func (s *Store) PullWith(ctx context.Context, name string, opts PullOptions) (*Environment, error) {
	if rec, ok := s.readBuilt(name); ok {
		// Nothing to fetch: a custom environment is made by "pyro env build".
		return s.builtEnv(ctx, rec)
	}
	if !IsCatalogName(name) {
		return s.pullImage(ctx, name, opts)
	}
	if opts.DiskSize != 0 {
		return nil, errdefs.InvalidArgument("disk_size", "applies to image environments only; catalog environments are sized by pyro")
	}
	return s.pull(ctx, name, opts.Force, true)
}

func (s *Store) pull(ctx context.Context, name string, force, verify bool) (*Environment, error) {
	e, err := lookup(name)
	if err != nil {
		return nil, err
	}
	ag, err := s.readyToBuild(ctx)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockEnv(ctx, e)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !force {
		if !verify {
			if in, _ := s.pick(e, ag.sha256, false); in != nil {
				return in.environment(), nil
			}
		}
		if in, _ := s.pick(e, ag.sha256, true); in != nil {
			cur, _, kerr := s.currentKernelHash(ctx)
			if kerr != nil || cur == in.manifest.Kernel.ConfigHash {
				return s.verifyLocked(ctx, e, in, ag)
			}
			s.progress(ctx, Event{Stage: "env", Message: "guest kernel config or source changed: building a new version of " + name})
		}
	}
	return s.pullOrBuild(ctx, e, ag, force)
}

// Verify re-hashes the installed kernel and image against the manifest and
// repairs what does not match (a new image version; the kernel in place).
func (s *Store) Verify(ctx context.Context, name string) (*Environment, error) {
	e, err := lookup(name)
	if err != nil {
		return nil, err
	}
	if err := s.init(); err != nil {
		return nil, err
	}
	ag, _, err := s.agent(ctx)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockEnv(ctx, e)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in, why := s.pick(e, ag.sha256, true)
	if in == nil {
		return nil, errNotInstalled(name, why)
	}
	return s.verifyLocked(ctx, e, in, ag)
}

// Inspect returns the manifest of the installed environment (the one Get
// would use, else the newest valid one whatever agent built it).
func (s *Store) Inspect(ctx context.Context, name string) (*Manifest, error) {
	if rec, ok := s.readBuilt(name); ok {
		in, err := s.getBuilt(ctx, rec, true)
		if err != nil {
			return nil, err
		}
		return in.manifest, nil
	}
	if !IsCatalogName(name) {
		in, err := s.getImage(ctx, name, true)
		if err != nil {
			return nil, err
		}
		return in.manifest, nil
	}
	e, err := lookup(name)
	if err != nil {
		return nil, err
	}
	if err := s.init(); err != nil {
		return nil, err
	}
	ag, _, _ := s.agent(ctx)
	in, why := s.pick(e, ag.sha256, false)
	if in == nil && ag.sha256 != "" {
		in, _ = s.pick(e, "", false)
	}
	if in == nil {
		return nil, errNotInstalled(name, why)
	}
	return in.manifest, nil
}

func (s *Store) lockEnv(ctx context.Context, e catalogEntry) (func(), error) {
	return acquireLock(ctx, s.lockPath("env-"+slug(e.Name)), func() {
		s.progress(ctx, Event{Stage: "env", Message: "waiting for another pyro process working on " + e.Name})
	})
}

// pick chooses the newest usable install of e, or explains why there is
// none. agentSum "" accepts any agent. allowKernel accepts an install whose
// only fault is the shared kernel file (verifyLocked can fix that).
func (s *Store) pick(e catalogEntry, agentSum string, allowKernel bool) (*install, string) {
	why := "is not installed"
	set := func(w string) {
		if why == "is not installed" {
			why = w
		}
	}
	for _, in := range s.scanInstalls(e) {
		switch {
		case in.manifest == nil:
			continue // half-built or damaged beyond use: not an install
		case in.err != nil && !(allowKernel && errors.Is(in.err, errKernelFiles)):
			set("is damaged (" + in.err.Error() + ")")
		case in.manifest.RecipeHash != e.recipeHash():
			set("was built from an older package recipe")
		case in.manifest.ImageRevision != imageRevision:
			set("was built by an older pyro image layout")
		case agentSum != "" && in.manifest.AgentSHA256 != agentSum:
			set("was built with a different guest agent")
		default:
			return &in, ""
		}
	}
	return nil, why
}

// readyToBuild makes the cache's directories, finds the agent every image
// bakes in, and clears what dead builds left: the start of every pull.
func (s *Store) readyToBuild(ctx context.Context) (agentInfo, error) {
	if err := s.init(); err != nil {
		return agentInfo{}, err
	}
	ag, has, err := s.agent(ctx)
	if err != nil {
		return agentInfo{}, err
	}
	if !has {
		return agentInfo{}, errNoAgent()
	}
	s.cleanStaleTmp()
	return ag, nil
}
