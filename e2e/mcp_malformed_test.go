package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pyrovm/pyro/internal/testutil"
)

const initLine = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// rawSession speaks JSON-RPC lines to `pyro mcp serve` by hand.
func rawSession(t *testing.T, state string) (io.WriteCloser, *bufio.Scanner, func() error) {
	t.Helper()
	cmd := pyroCmd(t, state, "mcp", "serve", "--profile", "vm-run")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	return in, sc, cmd.Wait
}

func TestMCPMalformedJSONRPCKeepsServing(t *testing.T) {
	s := stateDir(t)
	in, sc, wait := rawSession(t, s)
	for _, l := range []string{"{not json", `{"id":5}`, initLine, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`} {
		io.WriteString(in, l+"\n")
	}
	var codes []int
	gotList := false
	for len(codes) < 2 || !gotList {
		if !sc.Scan() {
			t.Fatalf("server ended early; codes %v", codes)
		}
		var m struct {
			ID    any `json:"id"`
			Error *struct {
				Code int `json:"code"`
			} `json:"error"`
			Result json.RawMessage `json:"result"`
		}
		json.Unmarshal(sc.Bytes(), &m)
		if m.Error != nil {
			codes = append(codes, m.Error.Code)
		}
		gotList = gotList || (m.ID == float64(2) && strings.Contains(string(m.Result), "vm_run"))
	}
	if codes[0] != -32700 || codes[1] != -32700 {
		t.Errorf("error codes %v, want parse errors", codes)
	}
	in.Close()
	wait()
}

// A client that disconnects mid-call: the VM is cleaned up.
func TestMCPClientDisconnectMidCall(t *testing.T) {
	s := stateDir(t)
	in, sc, wait := rawSession(t, s)
	io.WriteString(in, initLine+"\n")
	sc.Scan()
	io.WriteString(in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
	io.WriteString(in, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"vm_run","arguments":{"command":"sleep 600"}}}`+"\n")
	waitForVM(t, s, 2*time.Second)
	in.Close() // the client goes away
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("server did not exit after its client left")
	}
	if procs := testutil.QEMUProcessesUnder(s); len(procs) > 0 {
		t.Fatalf("VM left running: %v", procs)
	}
	if left, _ := os.ReadDir(filepath.Join(s, "vms")); len(left) != 0 {
		t.Fatalf("VM state left: %v", left)
	}
}

// A message over the 16 MiB line limit gets an error for its own request,
// so the client's call fails at once instead of waiting forever, and the
// session goes on.
func TestMCPOversizedMessage(t *testing.T) {
	s := stateDir(t)
	cs := mcpSession(t, s, "vm-run")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "vm_run", Arguments: map[string]any{"command": "echo " + strings.Repeat("x", 17<<20)}})
	if err == nil || !strings.Contains(err.Error(), "message too large") || ctx.Err() != nil {
		t.Fatalf("17 MiB call: %v (ctx %v)", err, ctx.Err())
	}
	if _, err := cs.ListTools(t.Context(), nil); err != nil {
		t.Fatalf("the session did not go on: %v", err)
	}
}
