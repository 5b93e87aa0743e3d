package workspace

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/vm"
)

// An export killed with -9 leaves its temporary beside the output; the next
// tidy removes it once its process is dead, and only names exports give.
func TestDeadOutputTemps(t *testing.T) {
	p := Paths{Dir: t.TempDir(), DiskFile: "disk.img"}
	out := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(p.OutputsDir(), 0o700)
	for name, owner := range map[string]int{
		".pyro-export-0123456789abcdef":      dead.Process.Pid,
		".pyro-disk-export-fedcba9876543210": os.Getpid(), // still running: kept
		"precious":                           dead.Process.Pid,
	} {
		if err := os.Mkdir(filepath.Join(out, name), 0o700); err != nil {
			t.Fatal(err)
		}
		rec := outputTemp{Dir: out, Name: name, Pid: owner, PidStart: vm.ProcStart(owner)}
		if err := fsutil.WriteJSONAtomic(filepath.Join(p.OutputsDir(), name+".json"), rec, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removeDeadOutputTemps(p)
	for name, want := range map[string]bool{".pyro-export-0123456789abcdef": false, ".pyro-disk-export-fedcba9876543210": true, "precious": true} {
		if _, err := os.Stat(filepath.Join(out, name)); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, want)
		}
	}
	if left, _ := os.ReadDir(p.OutputsDir()); len(left) != 1 {
		t.Errorf("records left: %v (want only the live export's)", left)
	}
}
