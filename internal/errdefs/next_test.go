package errdefs

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestNextRendersPerFace(t *testing.T) {
	e := New(ErrFailedPrecondition, "workspace_stopped", "workspace ab is stopped").
		WithNext(": %s first", "pyro workspace start ab", "workspace_start")
	wrapped := fmt.Errorf("exec: %w", e)
	if got, want := wrapped.Error(), `exec: workspace ab is stopped: run "pyro workspace start ab" first`; got != want {
		t.Errorf("CLI: %q, want %q", got, want)
	}
	if got, want := ForTool(wrapped), "exec: workspace ab is stopped: call workspace_start first"; got != want {
		t.Errorf("MCP: %q, want %q", got, want)
	}
	// Across a process boundary the hint travels as data and renders once.
	msg, next := Split(wrapped)
	b, _ := json.Marshal(next)
	var back Next
	json.Unmarshal(b, &back)
	rebuilt := &Error{Code: "workspace_stopped", Message: msg, Class: ErrFailedPrecondition, Next: &back}
	if rebuilt.Error() != wrapped.Error() || ForTool(rebuilt) != ForTool(wrapped) {
		t.Errorf("rebuilt %q / %q", rebuilt.Error(), ForTool(rebuilt))
	}
	// Only the operator can do it: the model is told so.
	op := New(ErrNotFound, CodeEnvironmentMissing, "environment x is not pulled").WithNext(": %s", "pyro env pull x", "")
	if got, want := ForTool(op), `environment x is not pulled: the operator can run "pyro env pull x"`; got != want {
		t.Errorf("operator: %q, want %q", got, want)
	}
	if plain := New(ErrInternal, CodeInternal, "boom"); ForTool(plain) != "boom" {
		t.Errorf("no hint: %q", ForTool(plain))
	}
}
