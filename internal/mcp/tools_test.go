package mcp

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

func TestProfiles(t *testing.T) {
	if got := ToolNames(ProfileVMRun, Config{}); !slices.Equal(got, []string{"vm_run", "vm_list_environments"}) || len(ToolNames(ProfileWorkspaceFull, Config{})) <= len(ToolNames(ProfileWorkspaceCore, Config{})) {
		t.Errorf("vm-run tools = %v", got)
	}
	for _, p := range Profiles {
		if got, err := ParseProfile(string(p)); err != nil || got != p {
			t.Errorf("ParseProfile(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := ParseProfile("everything"); err == nil {
		t.Error("unknown profile accepted")
	}
}

// Every tool of every profile registers (schemas build, every property is
// described) and appears exactly once.
func TestToolTableRegisters(t *testing.T) {
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{{Version: "test"}, {Version: "test", AllowNetworkChanges: true}} {
		for _, p := range Profiles {
			cfg.Profile = p
			checkToolList(t, c, cfg)
		}
	}
	if slices.Contains(ToolNames(ProfileWorkspaceFull, Config{}), "workspace_network_update") ||
		!slices.Contains(ToolNames(ProfileWorkspaceCore, Config{AllowNetworkChanges: true}), "workspace_network_update") {
		t.Error("workspace_network_update must be offered only with --allow-network-changes")
	}
}

// checkToolList checks that a server with cfg lists exactly the tools of
// its profile, each described.
func checkToolList(t *testing.T, c *pyro.Client, cfg Config) {
	p := cfg.Profile
	{
		cs := connect(t, c, cfg)
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
			b, _ := json.Marshal(tl.InputSchema)
			var sch struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			}
			json.Unmarshal(b, &sch)
			for name, prop := range sch.Properties {
				if prop.Description == "" {
					t.Errorf("%s.%s has no description", tl.Name, name)
				}
			}
			if tl.Description == "" {
				t.Errorf("%s has no description", tl.Name)
			}
		}
		want := ToolNames(p, cfg)
		slices.Sort(names)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("profile %s lists %v, want %v", p, names, want)
		}
		cs.Close()
	}
}

func TestInputSchemaRefusesUndescribedFields(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a property without a description was accepted")
		}
	}()
	type in struct {
		A string `json:"a"`
		B string `json:"b"`
	}
	inputSchema[in](map[string]prop{"a": {desc: "x"}})
}

// listTools registers a profile on an in-memory server and lists its tools.
func listTools(t *testing.T, p Profile) map[string]*mcp.Tool {
	t.Helper()
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return listToolsOf(t, c, p)
}

// listToolsOf lists the tools of a profile served over c.
func listToolsOf(t *testing.T, c *pyro.Client, p Profile) map[string]*mcp.Tool {
	t.Helper()
	cs := connect(t, c, Config{Profile: p, Version: "test"})
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*mcp.Tool{}
	for _, tl := range res.Tools {
		out[tl.Name] = tl
	}
	return out
}

type schemaProp struct {
	Type                 string `json:"type"`
	Description          string `json:"description"`
	AdditionalProperties *struct {
		Type string `json:"type"`
	} `json:"additionalProperties"`
	Items *struct {
		Type       string                `json:"type"`
		Required   []string              `json:"required"`
		Properties map[string]schemaProp `json:"properties"`
	} `json:"items"`
}

func toolProps(t *testing.T, tl *mcp.Tool) map[string]schemaProp {
	t.Helper()
	b, _ := json.Marshal(tl.InputSchema)
	var sch struct {
		Properties map[string]schemaProp `json:"properties"`
	}
	if err := json.Unmarshal(b, &sch); err != nil {
		t.Fatal(err)
	}
	return sch.Properties
}

// Secrets reach MCP as values only (no host file paths), and the calls
// that run programs take secret_env, in the narrowed core schemas too.
func TestSecretSchemas(t *testing.T) {
	for _, p := range []Profile{ProfileWorkspaceCore, ProfileWorkspaceFull} {
		tools := listTools(t, p)
		sec := toolProps(t, tools["workspace_create"])["secrets"]
		if sec.Type != "array" || sec.Description == "" || sec.Items == nil || sec.Items.Type != "object" {
			t.Fatalf("%s workspace_create.secrets = %+v", p, sec)
		}
		if got := slices.Sorted(maps.Keys(sec.Items.Properties)); !slices.Equal(got, []string{"broker_hosts", "name", "value"}) {
			t.Errorf("%s secrets items have %v; want name, value and broker_hosts only (no file_path over MCP)", p, got)
		}
		if !slices.Equal(sec.Items.Required, []string{"name", "value"}) {
			t.Errorf("%s secrets items require %v", p, sec.Items.Required)
		}
		for name, ip := range sec.Items.Properties {
			want := "string"
			if name == "broker_hosts" {
				want = "array"
			}
			if ip.Description == "" || ip.Type != want {
				t.Errorf("%s secrets.%s = %+v", p, name, ip)
			}
		}
		if !strings.Contains(tools["workspace_create"].Description, "never put a secret in command text") {
			t.Errorf("%s workspace_create does not say when to use secrets", p)
		}
		withEnv := []string{"workspace_exec"}
		if p == ProfileWorkspaceFull {
			withEnv = append(withEnv, "shell_open", "service_start")
		}
		for _, name := range withEnv {
			se := toolProps(t, tools[name])["secret_env"]
			if se.Type != "object" || se.Description == "" || se.AdditionalProperties == nil || se.AdditionalProperties.Type != "string" {
				t.Errorf("%s %s.secret_env = %+v", p, name, se)
			}
			if !strings.Contains(tools[name].Description, "secret_env") {
				t.Errorf("%s %s does not say when to use secret_env", p, name)
			}
		}
	}
}

// A server started with --no-network refuses every call that asks for a
// guest network, before anything boots, and says what to do instead.
func TestNoNetworkRefusesNetworkCalls(t *testing.T) {
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, c, Config{Profile: ProfileWorkspaceFull, Version: "test", NoNetwork: true})
	for name, args := range map[string]map[string]any{
		"vm_run":           {"command": "true", "network": true},
		"workspace_create": {"network_policy": "egress"},
		"vm_create":        {"network_policy": "egress"},
	} {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var text string
		for _, ct := range res.Content {
			if tc, ok := ct.(*mcp.TextContent); ok {
				text += tc.Text
			}
		}
		if !res.IsError || !strings.Contains(text, CodeNetworkDisabled) || !strings.Contains(text, "--no-network") {
			t.Errorf("%s: %v %q", name, res.IsError, text)
		}
	}
}

// connect serves cfg over c in memory and returns a connected client session.
func connect(t *testing.T, c *pyro.Client, cfg Config) *mcp.ClientSession {
	t.Helper()
	s, err := NewServer(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, ct := mcp.NewInMemoryTransports()
	if _, err := s.Connect(t.Context(), st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// Every tool carries a title and all its annotations, set from the table.
func TestEveryToolIsAnnotated(t *testing.T) {
	for name, tl := range listTools(t, ProfileWorkspaceFull) {
		a := tl.Annotations
		if tl.Title == "" || a == nil || a.Title != tl.Title || a.DestructiveHint == nil || a.OpenWorldHint == nil {
			t.Errorf("%s: title %q annotations %+v", name, tl.Title, a)
			continue
		}
		if a.ReadOnlyHint && (*a.DestructiveHint || *a.OpenWorldHint || !a.IdempotentHint) {
			t.Errorf("%s: read-only yet %+v", name, a)
		}
	}
	for _, name := range []string{"vm_status", "vm_network_info", "workspace_diff", "shell_read"} {
		if !listTools(t, ProfileWorkspaceFull)[name].Annotations.ReadOnlyHint {
			t.Errorf("%s is not read-only", name)
		}
	}
}

// Arguments the schema refuses come back as a tool result with the stable
// code invalid_argument, like every other error.
func TestBadArgumentsAreInvalidArgument(t *testing.T) {
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, c, Config{Profile: ProfileWorkspaceFull, Version: "test"})
	for _, args := range []map[string]any{
		{},                                // command missing
		{"command": "true", "vcpus": 2},   // unknown property
		{"command": 7},                    // wrong type
		{"command": "true", "mem_mib": 1}, // below the minimum
		{"command": "true", "timeout_seconds": 0},
	} {
		isErr, text := callText(t, cs, "vm_run", args)
		if !isErr || !strings.HasPrefix(text, "invalid_argument: arguments: ") {
			t.Errorf("%v: %v %q", args, isErr, text)
		}
	}
}

// Environments are open-ended (image references): no closed enum, a
// description that says what is accepted.
func TestEnvironmentSchemasDescribeReferences(t *testing.T) {
	tools := listTools(t, ProfileWorkspaceFull)
	for _, name := range []string{"vm_run", "vm_create", "workspace_create"} {
		b, _ := json.Marshal(tools[name].InputSchema)
		var sch struct {
			Properties map[string]struct {
				Enum        []any  `json:"enum"`
				Description string `json:"description"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(b, &sch); err != nil {
			t.Fatal(err)
		}
		p := sch.Properties["environment"]
		if len(p.Enum) != 0 || !strings.Contains(p.Description, "OCI image reference") || !strings.Contains(p.Description, "debian:12-build") {
			t.Errorf("%s environment schema: %+v", name, p)
		}
	}
}
