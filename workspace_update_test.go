package pyro_test

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
)

func TestWorkspaceUpdateConcurrencyAndTTL(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", Name: "upd", Labels: map[string]string{"a": "1", "b": "2"}, TTLSeconds: 8})
	if err != nil {
		t.Fatal(err)
	}
	newName := "renamed"
	u, err := c.UpdateWorkspace(ctx, pyro.UpdateWorkspaceRequest{Workspace: "upd", Name: &newName, Labels: map[string]string{"c": "3"}, ClearLabels: []string{"a"}})
	if err != nil || u.Name != "renamed" || u.Labels["c"] != "3" || u.Labels["b"] != "2" || u.Labels["a"] != "" {
		t.Fatalf("update: %v %+v", err, u)
	}
	if _, err := c.WorkspaceStatus(ctx, "upd"); pyro.ErrorCode(err) != "workspace_not_found" {
		t.Errorf("old name still resolves: %v", err)
	}

	// Several calls at once on one workspace: execs run in parallel, and
	// concurrent record updates lose nothing.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "sleep 2; echo ok"})
			if err == nil && r.Stdout != "ok\n" {
				err = os.ErrInvalid
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 7*time.Second {
		t.Errorf("4 parallel 2-second execs took %v: calls are serialized", d)
	}
	if s, _ := c.WorkspaceStatus(ctx, w.WorkspaceID); s.CommandCount != 4 {
		t.Errorf("command_count %d after 4 execs", s.CommandCount)
	}

	// TTL: after 8 s without activity, the next pyro call deletes it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ws, err := c.ListWorkspaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired workspace still listed: %+v", ws)
		}
		time.Sleep(time.Second)
	}
	if left, _ := os.ReadDir(filepath.Join(state, "workspaces")); len(left) != 0 {
		t.Errorf("expired workspace left state: %v", left)
	}
}

// Eight workspaces at once on this 2-core host, each answering for itself.
func TestEightWorkspacesAtOnce(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", MemMiB: 512, Name: "eight-" + strconv.Itoa(i)})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = w.WorkspaceID
		}()
	}
	wg.Wait()
	close(errs)
	defer func() {
		for _, id := range ids {
			if id != "" {
				c.DeleteWorkspace(ctx, id)
			}
		}
	}()
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: "eight-" + strconv.Itoa(i), Command: "echo " + strconv.Itoa(i) + " > me; cat me"})
			if err != nil || r.Stdout != strconv.Itoa(i)+"\n" {
				t.Errorf("workspace %d: %v %+v", i, err, r)
			}
		}()
	}
	wg.Wait()
	ws, err := c.ListWorkspaces(ctx)
	if err != nil || len(ws) != n {
		t.Fatalf("list: %v, %d workspaces", err, len(ws))
	}
	for _, w := range ws {
		if w.State != "running" {
			t.Errorf("%s is %s", w.WorkspaceID, w.State)
		}
	}
}
