package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Built binaries of a test process that ended are removed by the next
// build; those of live processes (this one, pid 1) and recent old-style
// dirs stay.
func TestRemoveDeadBinaries(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	dir := func(name string) string {
		d := filepath.Join(tmp, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	gone := dir(fmt.Sprintf("pyro-test-bin-pid%d-1", dead.Process.Pid))
	kept := []string{dir(binDirPrefix() + "2"), dir("pyro-test-bin-pid1-3"), dir("pyro-test-bin-12345")}
	removeDeadBinaries()
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s of a dead process kept: %v", gone, err)
	}
	for _, d := range kept {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
}
