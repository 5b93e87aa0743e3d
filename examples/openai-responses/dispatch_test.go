package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/responses"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/tools"
)

func TestDispatchRunsFunctionCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a real VM")
	}
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tools.New(t.Context(), c, "vm-run")
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	if params := toolParams(ts); len(params) != 2 || params[0].OfFunction == nil {
		t.Fatalf("tool params %+v", params)
	}
	// A model response as the API returns it: one function call, one message.
	var output []responses.ResponseOutputItemUnion
	raw := `[{"type":"function_call","call_id":"c1","name":"vm_run","arguments":"{\"command\":\"echo dispatched\"}"},
	         {"type":"function_call","call_id":"c2","name":"vm_run","arguments":"{\"vcpu_count\":99,\"command\":\"true\"}"},
	         {"type":"message","role":"assistant","content":[]}]`
	if err := json.Unmarshal([]byte(raw), &output); err != nil {
		t.Fatal(err)
	}
	next := dispatch(t.Context(), ts, output)
	if len(next) != 2 {
		t.Fatalf("outputs %d", len(next))
	}
	b, _ := json.Marshal(next)
	s := string(b)
	if !strings.Contains(s, `"call_id":"c1"`) || !strings.Contains(s, `dispatched\\n`) || !strings.Contains(s, "vcpu_count") {
		t.Fatalf("outputs %s", s)
	}
}
