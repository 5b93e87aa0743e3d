package e2e_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpSession connects the official Go SDK client to `pyro mcp serve` over stdio.
func mcpSession(t *testing.T, state string, profile string, extra ...string) *mcp.ClientSession {
	t.Helper()
	cmd := pyroCmd(t, state, append([]string{"mcp", "serve", "--profile", profile}, extra...)...)
	client := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callTool calls a tool that must succeed and decodes its structured result into out.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: %s", name, toolText(res))
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func toolText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestMCPStdioVMRun(t *testing.T) {
	s := stateDir(t)
	cs := mcpSession(t, s, "vm-run")
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var vmRun *mcp.Tool
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
		if tl.Name == "vm_run" {
			vmRun = tl
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"vm_list_environments", "vm_run"}) {
		t.Fatalf("vm-run profile tools = %v", names)
	}
	// The schema carries types, defaults and ranges.
	schema, _ := json.Marshal(vmRun.InputSchema)
	var sch struct {
		Required   []string `json:"required"`
		Properties map[string]struct {
			Type    string  `json:"type"`
			Default any     `json:"default"`
			Minimum float64 `json:"minimum"`
			Maximum float64 `json:"maximum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(schema, &sch); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sch.Required, []string{"command"}) {
		t.Errorf("required = %v", sch.Required)
	}
	if p := sch.Properties["vcpu_count"]; p.Type != "integer" || p.Minimum != 1 || p.Maximum != 8 || p.Default != float64(1) {
		t.Errorf("vcpu_count schema = %+v", p)
	}
	if p := sch.Properties["timeout_seconds"]; p.Default != float64(30) {
		t.Errorf("timeout_seconds schema = %+v", p)
	}

	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "vm_run",
		Arguments: map[string]any{"command": "uname -r; exit 5"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("vm_run failed: %s", toolText(res))
	}
	var out struct {
		ExitCode      int    `json:"exit_code"`
		Stdout        string `json:"stdout"`
		Environment   string `json:"environment"`
		ExecutionMode string `json:"execution_mode"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != 5 || !strings.HasPrefix(out.Stdout, "6.1.") || out.Environment != "debian:12" || out.ExecutionMode == "" {
		t.Fatalf("vm_run result %+v", out)
	}

	envs, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "vm_list_environments", Arguments: map[string]any{}})
	if err != nil || envs.IsError || !strings.Contains(toolText(envs), "debian:12-build") {
		t.Fatalf("vm_list_environments: %v %s", err, toolText(envs))
	}
}

func TestMCPStdioBadArguments(t *testing.T) {
	s := stateDir(t)
	cs := mcpSession(t, s, "vm-run")
	cases := []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"command": "true", "vcpu_count": 99}, "vcpu_count"},
		{map[string]any{"command": "true", "mem_mib": "lots"}, "mem_mib"},
		{map[string]any{}, "command"},
		{map[string]any{"command": "true", "environment": "nope:1"}, "environment"},
	}
	for _, tc := range cases {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "vm_run", Arguments: tc.args})
		if err != nil {
			// Protocol-level rejection is acceptable only if it names the field.
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: error %v does not name %q", tc.args, err, tc.want)
			}
			continue
		}
		if !res.IsError || !strings.Contains(toolText(res), tc.want) {
			t.Errorf("%v: isError=%v text %q; want an error naming %q", tc.args, res.IsError, toolText(res), tc.want)
		}
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_create", Arguments: map[string]any{}}); err == nil {
		t.Error("a tool outside the profile was callable")
	}
}
