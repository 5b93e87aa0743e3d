// Command sdk-workspace is the agent loop on a persistent workspace: seed it
// from a directory, run the tests, apply a patch, look at the diff, export a
// file, delete the workspace.
//
//	sdk-workspace ./repo 'make test' fix.diff
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/pyrovm/pyro"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: sdk-workspace SEED_DIR TEST_COMMAND PATCH_FILE")
	}
	ctx := context.Background()
	c, err := pyro.New()
	if err != nil {
		log.Fatal(err)
	}
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12-build", SeedPath: os.Args[1]})
	if err != nil {
		log.Fatal(err)
	}
	defer c.DeleteWorkspace(ctx, w.WorkspaceID)

	test := func() int {
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: os.Args[2], TimeoutSeconds: 300})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(r.Stdout, r.Stderr)
		return r.ExitCode
	}
	fmt.Println("before the patch: exit", test())
	patch, err := os.ReadFile(os.Args[3])
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: w.WorkspaceID, Patch: string(patch)}); err != nil {
		log.Fatalf("%s: %v", pyro.ErrorCode(err), err)
	}
	fmt.Println("after the patch: exit", test())
	d, err := c.DiffWorkspace(ctx, w.WorkspaceID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(d.Patch)
}
