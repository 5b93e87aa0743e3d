package mcp

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

func TestProfiles(t *testing.T) {
	if got := ToolNames(ProfileVMRun); !slices.Equal(got, []string{"vm_run", "vm_list_environments"}) || len(ToolNames(ProfileWorkspaceFull)) <= len(ToolNames(ProfileWorkspaceCore)) {
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
	for _, p := range Profiles {
		s := NewServer(c, Config{Profile: p, Version: "test"})
		st, ct := mcp.NewInMemoryTransports()
		if _, err := s.Connect(t.Context(), st, nil); err != nil {
			t.Fatal(err)
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "t"}, nil).Connect(t.Context(), ct, nil)
		if err != nil {
			t.Fatal(err)
		}
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
		want := ToolNames(p)
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
