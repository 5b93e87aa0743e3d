package mcp

import (
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

// Errors name the calling face's own verbs: a model is told which tool gets
// past an error, never a pyro command it cannot run, unless only the
// operator can fix it, which it is told so.
func TestErrorsNameTools(t *testing.T) {
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, c, Config{Profile: ProfileWorkspaceFull, Version: "test"})
	for _, d := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"workspace_status", map[string]any{"workspace_id": "nope"}, `workspace_not_found: no workspace "nope": call workspace_list to see the workspaces`},
		{"snapshot_delete", map[string]any{"workspace_id": "gone", "name": "s"}, `no workspace "gone": call workspace_list`},
	} {
		isErr, text := callText(t, cs, d.tool, d.args)
		if !isErr || !strings.Contains(text, d.want) || strings.Contains(text, `run "pyro workspace`) {
			t.Errorf("%s: %q, want %q", d.tool, text, d.want)
		}
	}
	// The SDK (and so the CLI) names the pyro command instead.
	_, err = c.WorkspaceStatus(t.Context(), "nope")
	if want := `no workspace "nope": run "pyro workspace list" to see the workspaces`; err == nil || err.Error() != want {
		t.Errorf("SDK: %v, want %q", err, want)
	}
}
