// Command sdk-shell-service shows the interactive side of a workspace: a
// Python REPL in a PTY shell read back as plain text, and an HTTP server run
// as a service with a readiness check, fetched from an exec.
//
//	sdk-shell-service
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/pyrovm/pyro"
)

func main() {
	ctx := context.Background()
	c, err := pyro.New()
	if err != nil {
		log.Fatal(err)
	}
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12-build"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.DeleteWorkspace(ctx, w.WorkspaceID)

	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: w.WorkspaceID})
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range []string{"python3 -q", "sum(i * i for i in range(10))"} {
		if _, err := c.WriteShell(ctx, pyro.WriteShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID, Input: line}); err != nil {
			log.Fatal(err)
		}
	}
	// Follow the output with cursors: each read starts where the last ended.
	var cursor int64
	for range 5 {
		out, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: w.WorkspaceID, ShellID: sh.ShellID,
			Cursor: cursor, Plain: true, WaitForIdleMs: 1000})
		if err != nil {
			log.Fatal(err)
		}
		if out.Output != "" {
			fmt.Println(out.Output)
		}
		cursor = out.NextCursor
	}

	svc, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: w.WorkspaceID, Name: "web",
		Command: "python3 -m http.server 8000", ReadyHTTP: "http://127.0.0.1:8000/"})
	if err != nil {
		log.Fatalf("%s: %v", pyro.ErrorCode(err), err)
	}
	fmt.Println("service", svc.Name, svc.State)
	r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID,
		Command: "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("GET / ->", r.Stdout)
	logs, err := c.ServiceLogs(ctx, pyro.ServiceLogsRequest{Workspace: w.WorkspaceID, Name: "web", TailLines: 3})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(logs.Log)
	if _, err := c.StopService(ctx, pyro.ServiceRequest{Workspace: w.WorkspaceID, Name: "web"}); err != nil {
		log.Fatal(err)
	}
}
