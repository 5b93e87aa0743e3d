package pyro_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

// Fork --count 3: each fork writes its own file that no other sees, their
// random streams differ, the source's service answers in every fork (also
// on the fork's own published host port), and the forks outlive their
// source: after it is deleted they exec, stop, start and exec again.
func TestFork(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	src := createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress+published-ports",
		Labels: map[string]string{"team": "a"}}).WorkspaceID
	mustExec(t, c, src, "echo prepared > prepared.txt")
	// debian images have no machine id; give the source one, as systemd
	// images do: each fork must get its own (in its restore's hello).
	const srcMachineID = "00000000000000000000000000000001"
	mustExec(t, c, src, "echo "+srcMachineID+" > /etc/machine-id")
	web, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: src, Name: "web", Command: "python3 -m http.server 8000",
		ReadyHTTP: "http://127.0.0.1:8000/", Publish: []pyro.PortMapping{{GuestPort: 8000}}})
	if err != nil {
		t.Fatal(err)
	}

	// A running source is never stopped by a fork: the same supervisor
	// and QEMU go on, and so does a shell it had open.
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: src})
	if err != nil {
		t.Fatal(err)
	}
	shell := &shellSession{t: t, c: c, ws: src, id: sh.ShellID}
	shell.write("x=before-fork")
	before := supervisorPids(t, state, src)

	res, err := c.ForkWorkspace(ctx, pyro.ForkWorkspaceRequest{Workspace: src, Count: 3, NamePrefix: "try"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Source.State != "running" || len(res.Forks) != 3 {
		t.Fatalf("fork: %+v", res)
	}
	if after := supervisorPids(t, state, src); after != before {
		t.Fatalf("the source's supervisor and QEMU changed in a fork: %+v -> %+v", before, after)
	}
	shell.write("echo $x-and-after")
	shell.readUntil("before-fork-and-after")
	// A second fork of the same source (its disk is a chain of two layers
	// now, the first one open in the forks) while the first forks run.
	again, err := c.ForkWorkspace(ctx, pyro.ForkWorkspaceRequest{Workspace: src})
	if err != nil {
		t.Fatalf("second fork: %v", err)
	}
	if got := mustExec(t, c, again.Forks[0].WorkspaceID, "cat prepared.txt").Stdout; got != "prepared\n" {
		t.Fatalf("second fork: %q", got)
	}
	if _, err := c.DeleteWorkspace(ctx, again.Forks[0].WorkspaceID); err != nil {
		t.Fatal(err)
	}
	all := []string{src}
	for i, f := range res.Forks {
		t.Cleanup(func() { c.DeleteWorkspace(ctx, f.WorkspaceID) })
		if f.State != "running" || f.Name != fmt.Sprintf("try-%d", i+1) || f.Labels["forked_from"] != src || f.Labels["team"] != "a" {
			t.Fatalf("fork %d: %+v", i, f)
		}
		all = append(all, f.WorkspaceID)
	}
	random := map[string]bool{}
	for _, ws := range all {
		got := mustExec(t, c, ws, "cat prepared.txt; echo "+ws+" > own-"+ws+"; curl -sS -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8000/").Stdout
		if got != "prepared\n200\n" {
			t.Fatalf("%s: %q", ws, got)
		}
		random[mustExec(t, c, ws, "head -c 16 /dev/urandom | od -An -tx1").Stdout] = true
	}
	if len(random) != len(all) {
		t.Fatalf("/dev/urandom gave the same bytes in two of %d workspaces: %v", len(all), random)
	}
	machineIDs := map[string]string{}
	for _, ws := range all {
		id := strings.TrimSpace(mustExec(t, c, ws, "cat /etc/machine-id").Stdout)
		if other, dup := machineIDs[id]; dup || len(id) != 32 || (ws == src) != (id == srcMachineID) {
			t.Fatalf("machine id of %s: %q (the same as %q's; source's %q)", ws, id, other, srcMachineID)
		}
		machineIDs[id] = ws
	}
	for _, ws := range all {
		if got := mustExec(t, c, ws, "ls own-*").Stdout; got != "own-"+ws+"\n" {
			t.Fatalf("%s sees %q", ws, got)
		}
	}
	hostPorts := map[int]bool{web.PublishedPorts[0].HostPort: true}
	for _, f := range res.Forks {
		svc, err := c.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: f.WorkspaceID, Name: "web"})
		if err != nil || svc.State != pyro.ServiceReady || len(svc.PublishedPorts) != 1 || hostPorts[svc.PublishedPorts[0].HostPort] {
			t.Fatalf("web in fork %s: %v %+v", f.WorkspaceID, err, svc)
		}
		hostPorts[svc.PublishedPorts[0].HostPort] = true
		hostGet(t, fmt.Sprintf("http://127.0.0.1:%d/", svc.PublishedPorts[0].HostPort))
	}
	// The source's changes show in a fork's diff too: same baseline.
	d, err := c.DiffWorkspace(ctx, res.Forks[0].WorkspaceID)
	if err != nil || !strings.Contains(fmt.Sprint(d), "prepared.txt") {
		t.Fatalf("diff of a fork: %v %+v", err, d)
	}

	if _, err := c.DeleteWorkspace(ctx, src); err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Forks {
		id := f.WorkspaceID
		if got := mustExec(t, c, id, "cat prepared.txt").Stdout; got != "prepared\n" {
			t.Fatalf("fork %s after the source's delete: %q", id, got)
		}
		if _, err := c.StopWorkspace(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartWorkspace(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got := mustExec(t, c, id, "cat prepared.txt own-"+id).Stdout; got != "prepared\n"+id+"\n" {
			t.Fatalf("fork %s after stop and start: %q", id, got)
		}
	}
	for _, f := range res.Forks {
		if _, err := c.DeleteWorkspace(ctx, f.WorkspaceID); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := filepath.Glob(layerPattern(state)); len(left) != 0 {
		t.Fatalf("disk layers left after every workspace went: %v", left)
	}
	if _, err := os.Stat(filepath.Join(state, "workspaces")); err != nil {
		t.Fatal(err)
	}
}

// Bad fork requests are refused before anything changes.
func TestForkBadInput(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	for _, tc := range []struct {
		req  pyro.ForkWorkspaceRequest
		code string
	}{
		{pyro.ForkWorkspaceRequest{Workspace: "nope"}, "workspace_not_found"},
		{pyro.ForkWorkspaceRequest{Workspace: "nope", Count: pyro.MaxForkCount + 1}, "invalid_argument"},
		{pyro.ForkWorkspaceRequest{Workspace: "nope", Count: -1}, "invalid_argument"},
		{pyro.ForkWorkspaceRequest{Workspace: "nope", NamePrefix: "bad name"}, "invalid_argument"},
	} {
		if _, err := c.ForkWorkspace(ctx, tc.req); pyro.ErrorCode(err) != tc.code {
			t.Errorf("%+v: %v, want %s", tc.req, err, tc.code)
		}
	}
}

// A paused source is forked from its saved machine and stays paused; its
// forks run with its processes and files.
func TestForkPaused(t *testing.T) {
	const alive = "cat kept.txt; kill -0 $(cat /tmp/bg.pid) && echo alive"
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	src := createWorkspace(t, c, "debian:12").WorkspaceID
	mustExec(t, c, src, "echo kept > kept.txt; sleep 1000 > /dev/null 2>&1 & echo $! > /tmp/bg.pid")
	if _, err := c.PauseWorkspace(ctx, src); err != nil {
		t.Fatal(err)
	}
	res, err := c.ForkWorkspace(ctx, pyro.ForkWorkspaceRequest{Workspace: src, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Forks {
		t.Cleanup(func() { c.DeleteWorkspace(context.WithoutCancel(ctx), f.WorkspaceID) })
	}
	if res.Source.State != "paused" || len(res.Forks) != 2 {
		t.Fatalf("fork of a paused workspace: %+v", res)
	}
	for _, f := range res.Forks {
		got := mustExec(t, c, f.WorkspaceID, alive).Stdout
		if got != "kept\nalive\n" {
			t.Fatalf("fork %s: %q", f.WorkspaceID, got)
		}
		if _, err := c.DeleteWorkspace(ctx, f.WorkspaceID); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustExec(t, c, src, alive).Stdout; got != "kept\nalive\n" {
		t.Fatalf("the source after its forks: %q", got)
	}
	if _, err := c.DeleteWorkspace(ctx, src); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(layerPattern(state)); len(left) != 0 {
		t.Fatalf("disk layers left: %v", left)
	}
}
