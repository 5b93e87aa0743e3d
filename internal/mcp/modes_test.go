package mcp

import (
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

// Each mode serves exactly its tools (all of them real rows of the table),
// tells the model how the task goes, and adds its notes to the tools it
// names; inspect offers nothing that writes to the host.
func TestModes(t *testing.T) {
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	rows := tableRows()
	for _, m := range Modes {
		spec := modes[m]
		if got, err := ParseMode(string(m)); err != nil || got != m {
			t.Fatalf("ParseMode(%q) = %v, %v", m, got, err)
		}
		for _, name := range spec.tools {
			if _, ok := rows[name]; !ok {
				t.Errorf("mode %s names unknown tool %s", m, name)
			}
		}
		for name := range spec.notes {
			if !slices.Contains(spec.tools, name) {
				t.Errorf("mode %s has a note for %s, which it does not offer", m, name)
			}
		}
		cfg := Config{Mode: m, Profile: ProfileVMRun, Version: "test"}
		checkToolList(t, c, cfg)
		names := ToolNames(ProfileVMRun, cfg)
		if len(names) != len(spec.tools) || len(names) >= len(ToolNames(ProfileWorkspaceFull, Config{})) {
			t.Errorf("mode %s offers %v, want its %d tools", m, names, len(spec.tools))
		}
		cs := connect(t, c, cfg)
		init := cs.InitializeResult()
		if !strings.Contains(init.Instructions, spec.instructions) {
			t.Errorf("mode %s: instructions %q lack the mode's", m, init.Instructions)
		}
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range res.Tools {
			if note := spec.notes[tl.Name]; note != "" && !strings.HasSuffix(tl.Description, note) {
				t.Errorf("mode %s: %s description lacks the note %q", m, tl.Name, note)
			}
		}
		cs.Close()
	}
	for _, name := range ToolNames("", Config{Mode: ModeInspect}) {
		if h := rows[name].hints; name == "workspace_export" || name == "workspace_sync_push" || (!h.readOnly && strings.HasPrefix(name, "snapshot")) {
			t.Errorf("inspect offers %s", name)
		}
	}
	if _, err := ParseMode("yolo"); err == nil || !strings.Contains(err.Error(), "repro-fix") {
		t.Errorf("ParseMode(yolo) = %v", err)
	}
	// A server without a mode is unchanged: no notes in any description.
	for name, tl := range listTools(t, ProfileWorkspaceFull) {
		for _, m := range Modes {
			if n := modes[m].notes[name]; n != "" && strings.Contains(tl.Description, n) {
				t.Errorf("%s carries mode %s's note without a mode", name, m)
			}
		}
	}
}
