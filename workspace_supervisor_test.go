package pyro_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// clientWithPyro is newWorkspaceClient with the pyro binary at pyroBin.
func clientWithPyro(t *testing.T, pyroBin string) (*pyro.Client, string) {
	t.Helper()
	state := t.TempDir()
	c, err := pyro.New(pyro.WithStateDir(state), pyro.WithAgentPath(testutil.Binaries(t)+"/pyro-agent"), pyro.WithPyroBinary(pyroBin))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	return c, state
}

// supervisorExe is the executable a running workspace's supervisor runs.
func supervisorExe(t *testing.T, state, id string) string {
	t.Helper()
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(supervisorPids(t, state, id).Pid), "exe"))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// Workspaces run under pyro-supervisor when it sits beside pyro, under
// `pyro __supervise` when it does not (which pyro hands to pyro-full, the
// complete CLI: the supervisor runs as pyro-full), and a
// pyro-supervisor of another API version is refused at launch, leaving
// nothing behind.
func TestSupervisorBin(t *testing.T) {
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)

	t.Run("beside", func(t *testing.T) {
		c, state := clientWithPyro(t, filepath.Join(bin, "pyro"))
		w := createWorkspace(t, c, "debian:12")
		if got, want := supervisorExe(t, state, w.WorkspaceID), filepath.Join(bin, "pyro-supervisor"); got != want {
			t.Fatalf("supervisor runs %s, want %s", got, want)
		}
		mustExec(t, c, w.WorkspaceID, "true")
	})

	t.Run("fallback", func(t *testing.T) {
		lone := t.TempDir()
		if err := os.Symlink(filepath.Join(bin, "pyro"), filepath.Join(lone, "pyro")); err != nil {
			t.Fatal(err)
		}
		c, state := clientWithPyro(t, filepath.Join(lone, "pyro"))
		w := createWorkspace(t, c, "debian:12")
		if got, want := supervisorExe(t, state, w.WorkspaceID), filepath.Join(bin, "pyro-full"); got != want {
			t.Fatalf("supervisor runs %s, want %s", got, want)
		}
		mustExec(t, c, w.WorkspaceID, "true")
		// Pause and resume launch it again the same way.
		if _, err := c.PauseWorkspace(t.Context(), w.WorkspaceID); err != nil {
			t.Fatal(err)
		}
		mustExec(t, c, w.WorkspaceID, "true")
		if got := supervisorExe(t, state, w.WorkspaceID); got != filepath.Join(bin, "pyro-full") {
			t.Fatalf("resumed supervisor runs %s", got)
		}
	})

	t.Run("outdated", func(t *testing.T) {
		old := t.TempDir()
		if err := os.Symlink(filepath.Join(bin, "pyro"), filepath.Join(old, "pyro")); err != nil {
			t.Fatal(err)
		}
		// A supervisor from before API versions: ready, with no api field.
		script := "#!/bin/sh\necho '{\"info\":{\"pid\":'$$'}}' >&3\nexec sleep 60\n"
		if err := os.WriteFile(filepath.Join(old, "pyro-supervisor"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		c, state := clientWithPyro(t, filepath.Join(old, "pyro"))
		_, err := c.CreateWorkspace(t.Context(), pyro.CreateWorkspaceRequest{Environment: "debian:12"})
		if pyro.ErrorCode(err) != pyro.CodeSupervisorOutdated {
			t.Fatalf("create under an old pyro-supervisor: %v", err)
		}
		if l, err := c.ListWorkspaces(t.Context()); err != nil || len(l) != 0 {
			t.Fatalf("workspaces left after the refused launch: %v %v", l, err)
		}
		if entries, _ := os.ReadDir(filepath.Join(state, "workspaces")); len(entries) != 0 {
			t.Fatalf("workspace dirs left: %v", entries)
		}
	})
}
