// Package hostcfg knows how each MCP host is told about pyro: the config
// of Claude Code (.mcp.json), Codex (config.toml), Claude Desktop, Cursor
// and OpenCode, over stdio or Streamable HTTP, and the `mcp add` command of
// the Claude Code and Codex CLIs.
package hostcfg

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/BurntSushi/toml"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// TokenEnv is the environment variable HTTP configs read the bearer token
// from, so that no config file holds it.
const TokenEnv = "PYRO_MCP_TOKEN"

// ToolTimeoutSeconds is the tool timeout configs set where the host takes
// one: long builds outlast the usual 60 s default.
const ToolTimeoutSeconds = 1800

// Server is how a host reaches pyro's MCP server: it starts Command (stdio)
// or, when URL is set, connects to a running `pyro mcp serve --http`.
type Server struct {
	Command string // absolute path of the pyro binary
	Profile string // MCP profile
	Mode    string // MCP task mode; when set it replaces Profile
	URL     string // http://HOST:PORT/mcp of a running server; "" = stdio
	// Token, when known, is put in Claude Code's `mcp add --header`, which
	// stores the header as given; configs always name TokenEnv instead.
	Token string
}

func (s Server) args() []string {
	if s.Mode != "" {
		return []string{"mcp", "serve", "--mode", s.Mode}
	}
	return []string{"mcp", "serve", "--profile", s.Profile}
}

func (s Server) bearer(ref string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + ref}
}

// Hosts are the hosts Config knows, sorted.
var Hosts = []string{"claude-code", "claude-desktop", "codex", "cursor", "opencode"}

// CommandHosts are the hosts with an `mcp add` command.
var CommandHosts = []string{"claude-code", "codex"}

// Config returns the config a host needs to run pyro: JSON for all but
// Codex, whose config.toml takes a TOML table.
func Config(host string, s Server) ([]byte, error) {
	http := s.URL != ""
	var v any
	switch host {
	case "claude-code": // .mcp.json (project scope); ${VAR} is expanded by Claude Code
		entry := map[string]any{"type": "stdio", "command": s.Command, "args": s.args()}
		if http {
			entry = map[string]any{"type": "http", "url": s.URL, "headers": s.bearer("${" + TokenEnv + "}")}
		}
		v = map[string]any{"mcpServers": map[string]any{"pyro": entry}}
	case "claude-desktop":
		if http {
			return nil, errdefs.InvalidArgument("http", "Claude Desktop's config file starts stdio servers only; leave out --http")
		}
		v = map[string]any{"mcpServers": map[string]any{"pyro": map[string]any{"command": s.Command, "args": s.args()}}}
	case "cursor": // ~/.cursor/mcp.json; ${env:VAR} is expanded by Cursor
		entry := map[string]any{"command": s.Command, "args": s.args()}
		if http {
			entry = map[string]any{"url": s.URL, "headers": s.bearer("${env:" + TokenEnv + "}")}
		}
		v = map[string]any{"mcpServers": map[string]any{"pyro": entry}}
	case "opencode": // opencode.json; {env:VAR} is expanded by OpenCode
		entry := map[string]any{"type": "local", "command": append([]string{s.Command}, s.args()...)}
		if http {
			entry = map[string]any{"type": "remote", "url": s.URL, "headers": s.bearer("{env:" + TokenEnv + "}")}
		}
		v = map[string]any{"$schema": "https://opencode.ai/config.json", "mcp": map[string]any{"servers": map[string]any{"pyro": entry}}}
	case "codex": // ~/.codex/config.toml
		entry := map[string]any{"command": s.Command, "args": s.args(), "startup_timeout_sec": 30, "tool_timeout_sec": ToolTimeoutSeconds}
		if http {
			entry = map[string]any{"url": s.URL, "bearer_token_env_var": TokenEnv, "tool_timeout_sec": ToolTimeoutSeconds}
		}
		var b bytes.Buffer
		err := toml.NewEncoder(&b).Encode(map[string]any{"mcp_servers": map[string]any{"pyro": entry}})
		return b.Bytes(), err
	default:
		return nil, unknown(host, Hosts)
	}
	return json.MarshalIndent(v, "", "  ")
}

// AddCommand returns the argv of the host CLI's own `mcp add`.
func AddCommand(host string, s Server) ([]string, error) {
	switch {
	case host == "claude-code" && s.URL != "":
		token := s.Token
		if token == "" {
			token = "${" + TokenEnv + "}"
		}
		return []string{"claude", "mcp", "add", "--transport", "http", "pyro", s.URL, "--header", "Authorization: Bearer " + token}, nil
	case host == "claude-code":
		return append([]string{"claude", "mcp", "add", "pyro", "--", s.Command}, s.args()...), nil
	case host == "codex" && s.URL != "":
		return []string{"codex", "mcp", "add", "pyro", "--url", s.URL, "--bearer-token-env-var", TokenEnv}, nil
	case host == "codex":
		return append([]string{"codex", "mcp", "add", "pyro", "--", s.Command}, s.args()...), nil
	}
	return nil, unknown(host, CommandHosts)
}

func unknown(host string, known []string) error {
	k := append([]string(nil), known...)
	sort.Strings(k)
	return errdefs.InvalidArgument("host", "%q is not one of %v", host, k)
}
