package tools_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/tools"
)

func TestToolsetDefinitionsAndCalls(t *testing.T) {
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithAgentPath(bin+"/pyro-agent"), pyro.WithPyroBinary(bin+"/pyro"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tools.New(context.Background(), c, "vm-run")
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	var names []string
	for _, d := range ts.Definitions() {
		names = append(names, d.Name)
		if d.Parameters["type"] != "object" || d.Description == "" {
			t.Errorf("%s: %+v", d.Name, d)
		}
	}
	if strings.Join(names, ",") != "vm_list_environments,vm_run" {
		t.Errorf("tools %v", names)
	}
	out, err := ts.Call(t.Context(), "vm_run", json.RawMessage(`{"command":"echo hi"}`))
	var r struct {
		Stdout string `json:"stdout"`
	}
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.Stdout != "hi\n" {
		t.Fatalf("vm_run: %v %s", err, out)
	}
	if _, err := ts.Call(t.Context(), "vm_run", json.RawMessage(`{"command":"true","vcpu_count":0}`)); !errors.Is(err, tools.ErrTool) || !strings.Contains(err.Error(), "vcpu_count") {
		t.Errorf("bad arguments: %v", err)
	}
	if _, err := ts.Call(t.Context(), "workspace_create", nil); !errors.Is(err, tools.ErrTool) {
		t.Errorf("tool outside the profile: %v", err)
	}
}
