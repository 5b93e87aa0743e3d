package e2e_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro/internal/testutil"
)

func TestMCPProgressAndCancellation(t *testing.T) {
	s := stateDir(t)
	var mu sync.Mutex
	var progress []string
	client := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, r.Params.Message)
			mu.Unlock()
		},
	})
	cs, err := client.Connect(t.Context(), &mcp.CommandTransport{Command: pyroCmd(t, s, "mcp", "serve", "--profile", "vm-run")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	params := &mcp.CallToolParams{Name: "vm_run", Arguments: map[string]any{"command": "true"}}
	params.SetProgressToken("tok-1")
	if res, err := cs.CallTool(t.Context(), params); err != nil || res.IsError {
		t.Fatalf("vm_run: %v %s", err, toolText(res))
	}
	mu.Lock()
	got := strings.Join(progress, " | ")
	mu.Unlock()
	if !strings.Contains(got, "boot") || !strings.Contains(got, "exec") {
		t.Errorf("progress notifications: %q", got)
	}

	// A cancelled vm_run kills the guest command and destroys its VM.
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		waitForVM(t, s, 2*time.Second)
		cancel()
	}()
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "vm_run", Arguments: map[string]any{"command": "sleep 600"}})
	if err == nil {
		t.Fatal("cancelled call succeeded")
	}
	if procs := testutil.WaitProcessesGone(s, 15*time.Second); len(procs) > 0 {
		t.Fatalf("VM survived the cancellation: %v", procs)
	}
	// The server still serves.
	if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "vm_run", Arguments: map[string]any{"command": "echo alive"}}); err != nil || !strings.Contains(toolText(res), "alive") {
		t.Fatalf("after cancel: %v %s", err, toolText(res))
	}
}
