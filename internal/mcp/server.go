// Package mcp is pyro's MCP server: the tool table, profiles and schemas, on
// top of the SDK Client. Transports: stdio (and Streamable HTTP later).
package mcp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
)

const instructions = "pyro runs commands in disposable Linux microVMs. Use vm_run for a one-off command in a fresh VM " +
	"(nothing persists). Every tool error starts with a stable code (e.g. invalid_argument, environment_missing, boot_failed) " +
	"followed by what to do next."

// ParseProfile validates a profile name.
func ParseProfile(s string) (Profile, error) {
	for _, p := range Profiles {
		if string(p) == s {
			return p, nil
		}
	}
	return "", errdefs.InvalidArgument("profile", "%q is not one of vm-run, workspace-core, workspace-full", s)
}

// Config says what a server exposes.
type Config struct {
	Profile Profile
	// Mode, when set, replaces the profile's tool set with a task's own
	// (see Modes) and says in the instructions how the task goes.
	Mode    Mode
	Version string
	// ProjectPath, when set, is the Git checkout workspace_create seeds from
	// (its tracked files) when the call gives no seed_path.
	ProjectPath string
	// NoNetwork refuses every call that asks for a guest network: the
	// operator, not the model, decides whether guests may reach the outside.
	NoNetwork bool
	// WorkspaceTTLSeconds is the ttl_seconds of a workspace_create that
	// gives none (or 0): a model that forgets workspace_delete does not leave
	// a VM running for ever. 0 = workspaces never expire unless asked.
	WorkspaceTTLSeconds int
	// AllowNetworkChanges offers workspace_network_update: without it a
	// model cannot widen its own sandbox's allow list.
	AllowNetworkChanges bool
	// AllowBuild offers environment_build: a model may make custom
	// environments, kept on the host for every later user.
	AllowBuild bool
}

// DefaultWorkspaceTTLSeconds is Config.WorkspaceTTLSeconds unless the
// operator says otherwise: an hour without activity.
const DefaultWorkspaceTTLSeconds = 3600

// deps is what tool handlers use.
type deps struct {
	c           *pyro.Client
	projectPath string
	noNetwork   bool
	netChanges  bool // workspace_network_update offered
	allowBuild  bool // environment_build offered
	host        hostRules
	rows        map[string]tool
	ttlSeconds  int
	notes       map[string]string // the mode's additions to tool descriptions
}

// CodeNetworkDisabled is the error of a call that asks for a guest network
// from a server started with --no-network.
const CodeNetworkDisabled = errdefs.CodeNetworkDisabled

// checkNetwork refuses a guest network (policy, or "on" for vm_run) when
// the operator disabled it.
func (d deps) checkNetwork(policy string) error {
	if d.noNetwork && policy != "" && policy != "off" {
		return errdefs.New(errdefs.ErrFailedPrecondition, CodeNetworkDisabled,
			"network: this MCP server was started with --no-network, so guests get no network; leave network and network_policy out")
	}
	return nil
}

// NewServer builds an MCP server exposing the tools of cfg.Profile. A model
// names host paths only beneath the roots c is confined to (see
// pyro.WithHostRoots); given an unconfined client, the server denies every
// host path.
func NewServer(c *pyro.Client, cfg Config) (*mcp.Server, error) {
	if _, confined := c.HostRoots(); !confined {
		var err error
		if c, err = c.Confine(); err != nil {
			return nil, err
		}
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "pyro", Version: cfg.Version}, &mcp.ServerOptions{Instructions: cfg.instructions()})
	d := deps{c: c, projectPath: cfg.ProjectPath, noNetwork: cfg.NoNetwork, netChanges: cfg.AllowNetworkChanges, allowBuild: cfg.AllowBuild, host: newHostRules(c),
		rows: tableRows(), ttlSeconds: cfg.WorkspaceTTLSeconds, notes: modes[cfg.Mode].notes}
	for _, t := range tools {
		if cfg.offers(t) && (t.gate == nil || t.gate(d)) {
			t.add(s, d, t.name)
		}
	}
	return s, nil
}

// ServeStdio serves one client on stdin/stdout until it disconnects or ctx ends.
func ServeStdio(ctx context.Context, c *pyro.Client, cfg Config) error {
	s, err := NewServer(c, cfg)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go reapLoop(ctx, c, cfg.WorkspaceTTLSeconds)
	r, w := stdioTransport()
	err = s.Run(ctx, &mcp.IOTransport{Reader: r, Writer: w})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// reapLoop deletes expired workspaces and VMs while the server runs, so
// that they go even when no call comes: every ttl/4, between 1 s and 30 s.
func reapLoop(ctx context.Context, c *pyro.Client, ttlSeconds int) {
	every := 30 * time.Second
	if ttlSeconds > 0 {
		every = min(every, max(time.Second, time.Duration(ttlSeconds)*time.Second/4))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = c.ReapExpired(ctx) // failures show up on the next call
		}
	}
}

// toolError turns an SDK error into the text a model sees: "code: message".
func toolError(err error) error {
	code := errdefs.CodeOf(err)
	if code == pyro.CodeHostPathDenied {
		return fmt.Errorf("%s: %s (the operator grants more directories with `pyro mcp serve --host-path DIR[:rw]`)", code, errdefs.ForTool(err))
	}
	return fmt.Errorf("%s: %s", code, errdefs.ForTool(err))
}

// heartbeatEvery is how often a call in flight reports progress, so that a
// client that resets its timeout on progress never times out a long command.
var heartbeatEvery = 2 * time.Second

// withProgress forwards the SDK's progress for this call as MCP progress
// notifications, when the client asked for them with a progress token, and
// sends a heartbeat (elapsed time) every heartbeatEvery until stop is called.
func withProgress(ctx context.Context, req *mcp.CallToolRequest) (_ context.Context, stop func()) {
	tok := req.Params.GetProgressToken()
	if tok == nil || req.Session == nil {
		return ctx, func() {}
	}
	var mu sync.Mutex
	n := 0.0
	notify := func(msg string) {
		mu.Lock()
		n++
		p := n
		mu.Unlock()
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: p, Message: msg})
	}
	done := make(chan struct{})
	go func() {
		start := time.Now()
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				notify(fmt.Sprintf("%s: still running, %.0f s elapsed", req.Params.Name, time.Since(start).Seconds()))
			}
		}
	}()
	ctx = pyro.ContextWithProgress(ctx, func(e pyro.ProgressEvent) {
		msg := e.Stage
		if e.Message != "" {
			msg += ": " + e.Message
		}
		notify(msg)
	})
	return ctx, sync.OnceFunc(func() { close(done) })
}

// handler adapts an SDK call to a tool handler; progress the SDK reports
// during the call, and a heartbeat, reach clients that asked for progress.
func handler[In, Out any](call func(context.Context, In) (Out, error)) func(context.Context, *mcp.CallToolRequest, In) (Out, error) {
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (Out, error) {
		ctx, stop := withProgress(ctx, req)
		defer stop()
		return call(ctx, in)
	}
}
