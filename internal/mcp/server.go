// Package mcp is pyro's MCP server: the tool table, profiles and schemas, on
// top of the SDK Client. Transports: stdio (and Streamable HTTP later).
package mcp

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	Version string
	// ProjectPath, when set, is the Git checkout workspace_create seeds from
	// (its tracked files) when the call gives no seed_path.
	ProjectPath string
	// NoNetwork refuses every call that asks for a guest network: the
	// operator, not the model, decides whether guests may reach the outside.
	NoNetwork bool
	// AllowNetworkChanges offers workspace_network_update: without it a
	// model cannot widen its own sandbox's allow list.
	AllowNetworkChanges bool
}

// deps is what tool handlers use.
type deps struct {
	c           *pyro.Client
	projectPath string
	noNetwork   bool
	netChanges  bool // workspace_network_update offered
	host        hostRules
}

// CodeNetworkDisabled is the error of a call that asks for a guest network
// from a server started with --no-network.
const CodeNetworkDisabled = "network_disabled"

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
	s := mcp.NewServer(&mcp.Implementation{Name: "pyro", Version: cfg.Version}, &mcp.ServerOptions{Instructions: instructions})
	d := deps{c: c, projectPath: cfg.ProjectPath, noNetwork: cfg.NoNetwork, netChanges: cfg.AllowNetworkChanges, host: newHostRules(c)}
	for _, t := range tools {
		if t.gate != nil && !t.gate(d) {
			continue
		}
		for _, p := range t.profiles {
			if p == cfg.Profile {
				t.add(s, d, t.name)
				break
			}
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
	r, w := stdioTransport()
	err = s.Run(ctx, &mcp.IOTransport{Reader: r, Writer: w})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// toolError turns an SDK error into the text a model sees: "code: message".
func toolError(err error) error {
	code := errdefs.CodeOf(err)
	if code == pyro.CodeHostPathDenied {
		return fmt.Errorf("%s: %s (the operator grants more directories with `pyro mcp serve --host-path DIR[:rw]`)", code, err.Error())
	}
	return fmt.Errorf("%s: %s", code, err.Error())
}

// withProgress forwards the SDK's progress for this call as MCP progress
// notifications, when the client asked for them with a progress token.
func withProgress(ctx context.Context, req *mcp.CallToolRequest) context.Context {
	tok := req.Params.GetProgressToken()
	if tok == nil || req.Session == nil {
		return ctx
	}
	var mu sync.Mutex
	n := 0.0
	return pyro.ContextWithProgress(ctx, func(e pyro.ProgressEvent) {
		mu.Lock()
		n++
		p := n
		mu.Unlock()
		msg := e.Stage
		if e.Message != "" {
			msg += ": " + e.Message
		}
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: p, Message: msg})
	})
}

// handler adapts an SDK call to a typed MCP tool handler; a failed call
// becomes an isError result whose text starts with the stable code.
// Progress the SDK reports during the call reaches clients that asked for it.
func handler[In, Out any](call func(context.Context, In) (Out, error)) mcp.ToolHandlerFor[In, Out] {
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		out, err := call(withProgress(ctx, req), in)
		if err != nil {
			var zero Out
			return nil, zero, toolError(err)
		}
		return nil, out, nil
	}
}
