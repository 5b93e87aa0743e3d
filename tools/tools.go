// Package tools exposes pyro's MCP tool table to programs that drive a model
// without MCP (OpenAI-style function calling, agent frameworks): the same
// tool names, JSON schemas, descriptions, validation and results as
// `pyro mcp serve`, served in memory.
package tools

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
	pyromcp "github.com/pyrovm/pyro/internal/mcp"
)

// Definition is one tool as a function-calling API wants it.
type Definition struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Parameters  map[string]any `json:"parameters"` // JSON Schema of the arguments
}

// Toolset is an in-memory MCP session over a Client.
type Toolset struct {
	session *mcp.ClientSession
	defs    []Definition
}

// New serves the tools of profile ("vm-run", "workspace-core" or
// "workspace-full") or of a task mode ("repro-fix", "inspect", "cold-start",
// "review-eval": a narrower tool set for one kind of task) over c. As over MCP, the model may name host paths
// (seed_path, source_path, output_path) only beneath the directories c was
// confined to with pyro.WithHostRoots; given an unconfined c, every host
// path is refused with host_path_denied.
func New(ctx context.Context, c *pyro.Client, profile string) (*Toolset, error) {
	cfg := pyromcp.Config{Version: "sdk"}
	if m, err := pyromcp.ParseMode(profile); err == nil && m != "" {
		cfg.Mode = m
	} else if cfg.Profile, err = pyromcp.ParseProfile(profile); err != nil {
		return nil, errdefs.InvalidArgument("profile", "%q is neither a profile (vm-run, workspace-core, workspace-full) nor a mode (repro-fix, inspect, cold-start, review-eval)", profile)
	}
	server, err := pyromcp.NewServer(c, cfg)
	if err != nil {
		return nil, err
	}
	st, ct := mcp.NewInMemoryTransports()
	if _, err := server.Connect(ctx, st, nil); err != nil {
		return nil, err
	}
	session, err := mcp.NewClient(&mcp.Implementation{Name: "pyro-tools", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		return nil, err
	}
	list, err := session.ListTools(ctx, nil)
	if err != nil {
		session.Close()
		return nil, err
	}
	t := &Toolset{session: session}
	for _, tl := range list.Tools {
		b, _ := json.Marshal(tl.InputSchema)
		var params map[string]any
		_ = json.Unmarshal(b, &params)
		t.defs = append(t.defs, Definition{Name: tl.Name, Description: tl.Description, Parameters: params})
	}
	return t, nil
}

// Definitions lists the tools.
func (t *Toolset) Definitions() []Definition { return t.defs }

// ErrTool marks a tool call that failed; its text is meant for the model.
var ErrTool = errors.New("tool error")

// Call runs a tool with JSON arguments and returns its result as JSON text.
// A failed call returns an error wrapping ErrTool whose text starts with the
// stable error code; hand that text back to the model.
func (t *Toolset) Call(ctx context.Context, name string, arguments json.RawMessage) (string, error) {
	var args map[string]any
	if len(arguments) > 0 {
		if err := json.Unmarshal(arguments, &args); err != nil {
			return "", errors.Join(ErrTool, errors.New("invalid_argument: arguments are not a JSON object: "+err.Error()))
		}
	}
	res, err := t.session.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", errors.Join(ErrTool, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	if res.IsError {
		return "", errors.Join(ErrTool, errors.New(text.String()))
	}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		return string(b), err
	}
	return text.String(), nil
}

// Close ends the session.
func (t *Toolset) Close() error { return t.session.Close() }
