// Package hostcfg knows how each MCP host is told about pyro: the JSON
// config of Claude Desktop, Cursor and OpenCode, and the `mcp add` command
// of the Claude Code and Codex CLIs.
package hostcfg

import (
	"encoding/json"
	"sort"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Server is how a host starts pyro's MCP server.
type Server struct {
	Command string // absolute path of the pyro binary
	Profile string // MCP profile
}

func (s Server) args() []string { return []string{"mcp", "serve", "--profile", s.Profile} }

// ConfigHosts are the hosts configured through a JSON file.
var ConfigHosts = []string{"claude-desktop", "cursor", "opencode"}

// CommandHosts are the hosts with an `mcp add` command.
var CommandHosts = []string{"claude-code", "codex"}

// Config returns the JSON a host's config file needs to run pyro.
func Config(host string, s Server) ([]byte, error) {
	var v any
	switch host {
	case "claude-desktop", "cursor":
		v = map[string]any{"mcpServers": map[string]any{"pyro": map[string]any{"command": s.Command, "args": s.args()}}}
	case "opencode":
		v = map[string]any{
			"$schema": "https://opencode.ai/config.json",
			"mcp": map[string]any{"pyro": map[string]any{
				"type": "local", "enabled": true, "command": append([]string{s.Command}, s.args()...),
			}},
		}
	default:
		return nil, unknown(host, ConfigHosts)
	}
	return json.MarshalIndent(v, "", "  ")
}

// AddCommand returns the argv of the host CLI's own `mcp add`.
func AddCommand(host string, s Server) ([]string, error) {
	switch host {
	case "claude-code":
		return append([]string{"claude", "mcp", "add", "pyro", "--", s.Command}, s.args()...), nil
	case "codex":
		return append([]string{"codex", "mcp", "add", "pyro", "--", s.Command}, s.args()...), nil
	}
	return nil, unknown(host, CommandHosts)
}

func unknown(host string, known []string) error {
	k := append([]string(nil), known...)
	sort.Strings(k)
	return errdefs.InvalidArgument("host", "%q is not one of %v", host, k)
}
