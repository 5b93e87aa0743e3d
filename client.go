// Package pyro is the Go SDK of pyro: disposable Linux microVMs for coding
// agents. Client is the single facade; the pyro CLI and the MCP server are thin
// layers over it, so all three faces agree.
//
//	c, err := pyro.New()
//	res, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "uname -r"})
package pyro

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/env/oci"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/hostpath"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/vmm/backends"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// Client runs pyro's operations. It is safe for concurrent use.
type Client struct {
	stateDir       string
	cacheDir       string
	agentPath      string
	pyroBin        string // runs workspace supervisors
	accel          string // "auto", "kvm" or "tcg"
	backendName    string // WithBackend / PYRO_BACKEND; "" = the default
	backend        vmm.Backend
	progress       func(ProgressEvent)
	log            *slog.Logger
	insecure       []string
	allowPull      []string // nil: any reference may be pulled on first use
	registry       *string  // WithEnvRegistry; nil: PYRO_ENV_REGISTRY or the config file
	noBuildNetwork bool     // custom environment builds never get a network

	envs *env.Store

	hostGrants []hostpath.Grant // set by WithHostRoots; nil: unconfined
	host       *hostpath.Access // nil: any host path

	accelOnce sync.Once
	verdict   vmm.AccelVerdict
}

// ProgressEvent reports long work (environment builds, boots).
type ProgressEvent struct {
	Stage   string `json:"stage"`
	Message string `json:"message,omitempty"`
	Done    int64  `json:"done,omitempty"`
	Total   int64  `json:"total,omitempty"` // 0 = unknown
}

// Option configures a Client.
type Option func(*Client)

// WithStateDir sets where VM and workspace state lives (default PYRO_STATE_DIR,
// else $XDG_STATE_HOME/pyro, else ~/.local/state/pyro).
func WithStateDir(dir string) Option { return func(c *Client) { c.stateDir = dir } }

// WithCacheDir sets where kernels and environments are cached (default
// PYRO_CACHE_DIR, else $XDG_CACHE_HOME/pyro, else ~/.cache/pyro).
func WithCacheDir(dir string) Option { return func(c *Client) { c.cacheDir = dir } }

// WithAgentPath sets the guest agent binary baked into environment images
// (default PYRO_AGENT_PATH, else pyro-agent beside the running executable,
// else pyro-agent on PATH).
func WithAgentPath(path string) Option { return func(c *Client) { c.agentPath = path } }

// WithAccel forces an accelerator: "kvm", "tcg" or "auto" (default PYRO_ACCEL,
// else auto: KVM only where a probe guest really boots under it).
func WithAccel(accel string) Option { return func(c *Client) { c.accel = accel } }

// WithBackend picks the VMM backend that runs the guests by name: "qemu"
// (the default, and today the only one; PYRO_BACKEND). An unknown name
// fails New with invalid_argument. Workspaces are run by the backend that
// made their disks: keep one backend per state dir.
func WithBackend(name string) Option { return func(c *Client) { c.backendName = name } }

// WithProgress receives progress of long operations.
func WithProgress(fn func(ProgressEvent)) Option { return func(c *Client) { c.progress = fn } }

// WithInsecureRegistries names registries (host[:port]) that may be
// reached over plain HTTP; no other registry ever is. PYRO_INSECURE_REGISTRIES
// (comma separated) adds to them.
func WithInsecureRegistries(hosts ...string) Option {
	return func(c *Client) { c.insecure = append(c.insecure, hosts...) }
}

// WithAllowPull limits which image references are pulled on first use (by
// Run, CreateWorkspace, CreateVM, Prepare): only those whose normalized
// reference ("docker.io/library/python:3.12-slim") matches one of the
// patterns (path.Match globs: '*' stops at '/'). Without this option every
// reference may be pulled; with it and no patterns, none. The MCP server
// uses it for "pyro mcp serve --allow-pull".
func WithAllowPull(patterns ...string) Option {
	return func(c *Client) { c.allowPull = append([]string{}, patterns...) }
}

// WithEnvRegistry names the registry prefix (HOST[:PORT][/PATH]) where a
// team publishes pyro's catalog environments with PushEnvironment, one tag
// per name (PREFIX/debian:12): a catalog environment missing from the
// cache is pulled from there before it is built locally, and a host that
// cannot build the guest kernel takes it from there. "" turns it off. The
// default is PYRO_ENV_REGISTRY, else the first line of
// ~/.config/pyro/env-registry or /etc/pyro/env-registry.
func WithEnvRegistry(prefix string) Option { return func(c *Client) { c.registry = &prefix } }

// WithNoBuildNetwork refuses custom environment builds whose steps ask for
// a network (network_disabled), also the rebuild of a stale one on use: the
// MCP server sets it for "pyro mcp serve --no-network".
func WithNoBuildNetwork() Option { return func(c *Client) { c.noBuildNetwork = true } }

// WithLogger sets the logger for diagnostics (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// New returns a Client. It touches nothing on disk until an operation needs it.
func New(opts ...Option) (*Client, error) {
	c := &Client{
		stateDir:    os.Getenv("PYRO_STATE_DIR"),
		cacheDir:    os.Getenv("PYRO_CACHE_DIR"),
		agentPath:   os.Getenv("PYRO_AGENT_PATH"),
		accel:       os.Getenv("PYRO_ACCEL"),
		backendName: os.Getenv("PYRO_BACKEND"),
	}
	for _, o := range opts {
		o(c)
	}
	if c.stateDir == "" {
		c.stateDir = store.DefaultStateDir()
	}
	if c.cacheDir == "" {
		dir, err := env.DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		c.cacheDir = dir
	}
	if c.agentPath == "" {
		c.agentPath = defaultAgentPath()
	}
	if c.accel == "" {
		c.accel = "auto"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := validateAccel(c.accel); err != nil {
		return nil, err
	}
	backend, err := backends.ByName(c.backendName)
	if err != nil {
		return nil, err
	}
	c.backend, c.backendName = backend, backend.Name()
	if c.hostGrants != nil {
		h, err := hostpath.Open(c.hostGrants)
		if err != nil {
			return nil, err
		}
		c.host = h
	}
	for _, p := range c.allowPull {
		if _, err := path.Match(p, ""); err != nil {
			return nil, errdefs.InvalidArgument("allow_pull", "pattern %q is not a valid glob: %v", p, err)
		}
	}
	registry, err := envRegistry(c.registry)
	if err != nil {
		return nil, err
	}
	eo := env.Options{CacheDir: c.cacheDir, AgentPath: c.agentPath, Progress: c.envProgress,
		InsecureRegistries: append(c.insecure, oci.InsecureFromEnv()...), EnvRegistry: registry}
	if c.allowPull != nil {
		eo.PullAllowed = c.pullAllowed
	}
	c.envs = env.NewStore(eo)
	return c, nil
}

// StateDir and CacheDir report where the client keeps its files.
func (c *Client) StateDir() string { return c.stateDir }
func (c *Client) CacheDir() string { return c.cacheDir }

func (c *Client) vmsDir() string { return filepath.Join(c.stateDir, "vms") }

func (c *Client) envProgress(e env.Event) {
	if c.progress != nil {
		c.progress(ProgressEvent{Stage: e.Stage, Message: e.Message, Done: e.Done, Total: e.Total})
	}
}

// envCtx carries a call's own progress listener (ContextWithProgress, e.g.
// one MCP request) down to the environment store: pulls and builds report
// to it too.
func (c *Client) envCtx(ctx context.Context) context.Context {
	fn, ok := ctx.Value(progressKey{}).(func(ProgressEvent))
	if !ok {
		return ctx
	}
	return env.WithProgress(ctx, func(e env.Event) {
		fn(ProgressEvent{Stage: e.Stage, Message: e.Message, Done: e.Done, Total: e.Total})
	})
}

func (c *Client) pullAllowed(ref string) bool {
	for _, p := range c.allowPull {
		if ok, _ := path.Match(p, ref); ok {
			return true
		}
	}
	return false
}

type progressKey struct{}

// ContextWithProgress returns a context whose calls also report their
// progress to fn (the MCP server forwards it as progress notifications).
func ContextWithProgress(ctx context.Context, fn func(ProgressEvent)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

func (c *Client) report(ctx context.Context, e ProgressEvent) {
	if c.progress != nil {
		c.progress(e)
	}
	if fn, ok := ctx.Value(progressKey{}).(func(ProgressEvent)); ok {
		fn(e)
	}
}

// reapOrphans removes VMs whose owning pyro process died. Every operation that
// boots calls it first, so nothing leaks past the next pyro call.
func (c *Client) reapOrphans() {
	reaped, err := vm.ReapOrphans(c.vmsDir())
	if len(reaped) > 0 {
		c.log.Info("reaped orphaned VMs", "vms", reaped)
	}
	if err != nil {
		c.log.Warn("reaping orphaned VMs", "err", err)
	}
}

// accelFor returns the accelerator to use with this kernel, probing once.
func (c *Client) accelFor(ctx context.Context, kernelPath string) vmm.AccelVerdict {
	c.accelOnce.Do(func() {
		switch c.accel {
		case "kvm":
			c.verdict = vmm.AccelVerdict{Accel: vmm.AccelKVM, KVMUsable: true, Reason: "forced by PYRO_ACCEL/WithAccel"}
		case "tcg":
			c.verdict = vmm.AccelVerdict{Accel: vmm.AccelTCG, Reason: "forced by PYRO_ACCEL/WithAccel"}
		default:
			c.verdict = c.backend.DetectAccel(ctx, kernelPath, filepath.Join(c.cacheDir, "accel.json"))
		}
	})
	return c.verdict
}

func defaultAgentPath() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "pyro-agent")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	if p, err := exec.LookPath("pyro-agent"); err == nil {
		return p
	}
	return ""
}
