package hostcfg

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestConfigs(t *testing.T) {
	s := Server{Command: "/usr/local/bin/pyro", Profile: "workspace-core"}
	for _, h := range []string{"claude-desktop", "cursor"} {
		b, err := Config(h, s)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			MCPServers map[string]struct {
				Command string   `json:"command"`
				Args    []string `json:"args"`
			} `json:"mcpServers"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.MCPServers["pyro"].Command != s.Command ||
			!slices.Equal(v.MCPServers["pyro"].Args, []string{"mcp", "serve", "--profile", "workspace-core"}) {
			t.Errorf("%s: %v %s", h, err, b)
		}
	}
	b, err := Config("opencode", s)
	var oc struct {
		MCP map[string]struct {
			Type    string   `json:"type"`
			Command []string `json:"command"`
		} `json:"mcp"`
	}
	if err != nil || json.Unmarshal(b, &oc) != nil || oc.MCP["pyro"].Type != "local" || oc.MCP["pyro"].Command[0] != s.Command {
		t.Errorf("opencode: %v %s", err, b)
	}
	if _, err := Config("vim", s); err == nil {
		t.Error("unknown host accepted")
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
	if _, err := AddCommand("emacs", s); err == nil {
		t.Error("unknown host accepted")
	}
}
