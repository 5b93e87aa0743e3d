package hostcfg

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var (
	stdio = Server{Command: "/usr/local/bin/pyro", Profile: "workspace-core"}
	http  = Server{Command: "/usr/local/bin/pyro", Profile: "workspace-core", URL: "http://127.0.0.1:8765/mcp"}
	args  = []string{"mcp", "serve", "--profile", "workspace-core"}
)

// Every generated config parses with its format's own parser and names the
// server the way that host reads it.
func TestJSONConfigs(t *testing.T) {
	type entry struct {
		Type    string            `json:"type"`
		Command json.RawMessage   `json:"command"`
		Args    []string          `json:"args"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
	}
	decode := func(host string, s Server) entry {
		t.Helper()
		b, err := Config(host, s)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		var v struct {
			MCPServers map[string]entry `json:"mcpServers"`
			MCP        struct {
				Servers map[string]entry `json:"servers"`
			} `json:"mcp"`
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v\n%s", host, err, b)
		}
		if host == "opencode" {
			return v.MCP.Servers["pyro"]
		}
		return v.MCPServers["pyro"]
	}
	for _, h := range []string{"claude-code", "claude-desktop", "cursor"} {
		e := decode(h, stdio)
		if string(e.Command) != `"/usr/local/bin/pyro"` || !slices.Equal(e.Args, args) {
			t.Errorf("%s stdio: %+v", h, e)
		}
	}
	e := decode("opencode", stdio)
	var argv []string
	if json.Unmarshal(e.Command, &argv); e.Type != "local" || !slices.Equal(argv, append([]string{stdio.Command}, args...)) {
		t.Errorf("opencode stdio: %+v", e)
	}
	for h, ref := range map[string]string{"claude-code": "${PYRO_MCP_TOKEN}", "cursor": "${env:PYRO_MCP_TOKEN}", "opencode": "{env:PYRO_MCP_TOKEN}"} {
		e := decode(h, http)
		if e.URL != http.URL || e.Headers["Authorization"] != "Bearer "+ref {
			t.Errorf("%s http: %+v", h, e)
		}
	}
	if _, err := Config("claude-desktop", http); err == nil {
		t.Error("claude-desktop accepted an HTTP server")
	}
	if _, err := Config("vim", stdio); err == nil {
		t.Error("unknown host accepted")
	}
}

func TestCodexTOML(t *testing.T) {
	var v struct {
		MCPServers map[string]struct {
			Command           string
			Args              []string
			URL               string
			BearerTokenEnvVar string `toml:"bearer_token_env_var"`
			ToolTimeoutSec    int    `toml:"tool_timeout_sec"`
			StartupTimeoutSec int    `toml:"startup_timeout_sec"`
		} `toml:"mcp_servers"`
	}
	b, err := Config("codex", stdio)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := toml.Decode(string(b), &v); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if p := v.MCPServers["pyro"]; p.Command != stdio.Command || !slices.Equal(p.Args, args) || p.ToolTimeoutSec != ToolTimeoutSeconds || p.StartupTimeoutSec == 0 {
		t.Errorf("codex stdio: %+v\n%s", p, b)
	}
	b, _ = Config("codex", http)
	v.MCPServers = nil
	if _, err := toml.Decode(string(b), &v); err != nil {
		t.Fatal(err)
	}
	if p := v.MCPServers["pyro"]; p.URL != http.URL || p.BearerTokenEnvVar != TokenEnv || p.Command != "" {
		t.Errorf("codex http: %+v\n%s", p, b)
	}
}

func TestAddCommands(t *testing.T) {
	s := Server{Command: "/p/pyro", Profile: "vm-run"}
	got, err := AddCommand("claude-code", s)
	want := []string{"claude", "mcp", "add", "pyro", "--", "/p/pyro", "mcp", "serve", "--profile", "vm-run"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("claude-code: %v %v", err, got)
	}
	if got, _ := AddCommand("codex", s); got[0] != "codex" {
		t.Errorf("codex: %v", got)
	}
	// A task mode replaces the profile.
	s.Mode = "review-eval"
	if got, _ := AddCommand("claude-code", s); !slices.Equal(got[len(got)-4:], []string{"mcp", "serve", "--mode", "review-eval"}) {
		t.Errorf("claude-code with mode: %v", got)
	}
	s.Mode = ""
	h := Server{URL: "http://127.0.0.1:1/mcp", Token: "t0k"}
	if got, _ := AddCommand("claude-code", h); !slices.Contains(got, "Authorization: Bearer t0k") || !slices.Contains(got, "http") {
		t.Errorf("claude-code http: %v", got)
	}
	if got, _ := AddCommand("codex", h); !slices.Contains(got, "--url") || !slices.Contains(got, TokenEnv) {
		t.Errorf("codex http: %v", got)
	}
	if _, err := AddCommand("emacs", s); err == nil {
		t.Error("unknown host accepted")
	}
}
