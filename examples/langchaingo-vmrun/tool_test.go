package main

import (
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	pyrotools "github.com/pyrovm/pyro/tools"
)

func TestVMRunTool(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a real VM")
	}
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := pyrotools.New(t.Context(), c, "vm-run")
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	tool := VMRun{Toolset: ts, Environment: "debian:12"}
	out, err := tool.Call(t.Context(), "echo from-langchaingo")
	if err != nil || !strings.Contains(out, `"stdout":"from-langchaingo\n"`) {
		t.Fatalf("call: %v %s", err, out)
	}
	// A failed call is text for the model, with its stable code: the
	// toolset grants the model no host path, so a local image layout is refused.
	out, err = VMRun{Toolset: ts, Environment: "oci-layout:/nonexistent/nope"}.Call(t.Context(), "true")
	if err != nil || !strings.Contains(out, "\nhost_path_denied: ") {
		t.Fatalf("error for the model: %v %s", err, out)
	}
}
