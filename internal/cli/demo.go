package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
)

// The demo project: a one-line bug that its test catches, fixed by a patch.
var demoFiles = map[string]string{
	"add.sh":  "#!/bin/sh\n# add A B prints A+B\necho $(( $1 - $2 ))\n",
	"test.sh": "#!/bin/sh\ngot=$(sh add.sh 2 3)\n[ \"$got\" = 5 ] && echo \"PASS add 2 3 = $got\" || { echo \"FAIL add 2 3 = $got, want 5\"; exit 1; }\n",
}

const demoPatch = `--- a/add.sh
+++ b/add.sh
@@ -1,3 +1,3 @@
 #!/bin/sh
 # add A B prints A+B
-echo $(( $1 - $2 ))
+echo $(( $1 + $2 ))
`

// demoStep is one step of the demo, as printed and as --json reports it.
type demoStep struct {
	Step       string `json:"step"`
	Call       string `json:"call"` // the CLI command (and MCP tool) that does the same
	OK         bool   `json:"ok"`
	Output     string `json:"output,omitempty"`
	DurationMs int64  `json:"duration_ms"`
}

func (a *app) demoCommand() *cobra.Command {
	var env string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "A two-minute tour on real microVMs: a one-shot run, then a workspace where a failing test is fixed",
		Long: "Runs pyro's two modes for real: a one-shot `pyro run`, then a workspace seeded with a tiny project\n" +
			"whose test fails; it runs the test, applies a patch, runs it again, shows the diff and deletes the\n" +
			"workspace. Each step names the CLI command and MCP tool that does the same. Nothing is left behind.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			defer done()
			steps, err := runDemo(ctx, c, env, func(s demoStep) {
				if !jsonOut {
					a.printDemoStep(s)
				}
			})
			if jsonOut {
				out := map[string]any{"environment": env, "ok": err == nil, "steps": steps}
				if err != nil {
					out["error"] = map[string]string{"code": pyro.ErrorCode(err), "message": err.Error()}
				}
				writeJSON(a.stdout, out)
			}
			if err != nil {
				if !jsonOut {
					return a.fail(ctx, err, false)
				}
				return exitError{ExitPyroFailure}
			}
			if !jsonOut {
				fmt.Fprintln(a.stdout, "\nThat is pyro. Next: `pyro host connect claude-code` (or codex), or `pyro mcp serve --help`.")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "environment", pyro.DefaultEnvironment, "environment the demo runs in")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object with every step")
	return cmd
}

func (a *app) printDemoStep(s demoStep) {
	mark := "ok  "
	if !s.OK {
		mark = "FAIL"
	}
	fmt.Fprintf(a.stdout, "%s %-46s %6d ms   %s\n", mark, s.Step, s.DurationMs, s.Call)
	for _, line := range strings.Split(strings.TrimRight(s.Output, "\n"), "\n") {
		if line != "" {
			fmt.Fprintf(a.stdout, "       | %s\n", line)
		}
	}
}

// runDemo runs the tour; show sees each step as it ends. The workspace is
// deleted whatever happens (also on Ctrl-C: with a fresh context).
func runDemo(ctx context.Context, c *pyro.Client, env string, show func(demoStep)) ([]demoStep, error) {
	steps := []demoStep{}
	step := func(name, call string, f func() (string, bool, error)) error {
		start := time.Now()
		out, ok, err := f()
		s := demoStep{Step: name, Call: call, OK: ok && err == nil, Output: out, DurationMs: time.Since(start).Milliseconds()}
		steps = append(steps, s)
		show(s)
		if err == nil && !ok {
			err = fmt.Errorf("demo step %q did not give the expected result", name)
		}
		return err
	}
	err := step("one-shot run: uname -r in a fresh VM", "pyro run "+env+" -- uname -r · vm_run", func() (string, bool, error) {
		r, err := c.Run(ctx, pyro.RunRequest{Environment: env, Command: "uname -r"})
		if err != nil {
			return "", false, err
		}
		return r.Stdout, r.ExitCode == 0, nil
	})
	if err != nil {
		return steps, err
	}

	seed, err := os.MkdirTemp("", "pyro-demo-")
	if err != nil {
		return steps, err
	}
	defer os.RemoveAll(seed)
	for name, body := range demoFiles {
		if err := os.WriteFile(filepath.Join(seed, name), []byte(body), 0o755); err != nil {
			return steps, err
		}
	}
	var ws *pyro.Workspace
	err = step("workspace: create, seeded with a tiny project", "pyro workspace create "+env+" --seed-path DIR · workspace_create", func() (string, bool, error) {
		ws, err = c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: env, SeedPath: seed, Name: "pyro-demo", TTLSeconds: 600})
		if err != nil {
			return "", false, err
		}
		return "workspace " + ws.WorkspaceID, true, nil
	})
	if err != nil {
		return steps, err
	}
	deleted := false
	defer func() {
		if deleted {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = c.DeleteWorkspace(dctx, ws.WorkspaceID)
	}()
	test := func(name string, wantExit int) error {
		return step(name, "pyro workspace exec ID -- sh test.sh · workspace_exec", func() (string, bool, error) {
			r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws.WorkspaceID, Command: "sh test.sh"})
			if err != nil {
				return "", false, err
			}
			return r.Stdout + r.Stderr, r.ExitCode == wantExit, nil
		})
	}
	if err := test("run the test: it fails (the bug)", 1); err != nil {
		return steps, err
	}
	if err := step("fix: apply a patch", "pyro workspace patch apply ID --patch-file F · workspace_patch_apply", func() (string, bool, error) {
		_, err := c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: ws.WorkspaceID, Patch: demoPatch})
		return "", err == nil, err
	}); err != nil {
		return steps, err
	}
	if err := test("run the test again: it passes", 0); err != nil {
		return steps, err
	}
	if err := step("diff against the seeded baseline", "pyro workspace diff ID · workspace_diff", func() (string, bool, error) {
		d, err := c.DiffWorkspace(ctx, ws.WorkspaceID)
		if err != nil {
			return "", false, err
		}
		return d.Patch, d.Modified == 1, nil
	}); err != nil {
		return steps, err
	}
	return steps, step("delete the workspace", "pyro workspace delete ID · workspace_delete", func() (string, bool, error) {
		_, err := c.DeleteWorkspace(ctx, ws.WorkspaceID)
		deleted = err == nil
		return "", deleted, err
	})
}
