package workspace

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// savedFixture makes a workspace dir with a disk and a complete saved
// machine matching it.
func savedFixture(t *testing.T) Paths {
	t.Helper()
	p := Paths{Dir: t.TempDir(), DiskFile: "disk.img"}
	if err := os.WriteFile(p.Disk(), []byte("disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.PauseDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.PauseDir(), supervisor.PausedStateFile), []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := supervisor.DiskIDOf(p.Disk())
	if err != nil {
		t.Fatal(err)
	}
	meta := supervisor.Paused{StateBytes: 5, Disk: id, PausedAt: time.Now()}
	if err := fsutil.WriteJSONAtomic(filepath.Join(p.PauseDir(), supervisor.PausedMetaFile), meta, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A saved machine counts only while it is complete and its disk is the
// very file it was saved with, unchanged.
func TestPausedState(t *testing.T) {
	if p := savedFixture(t); paused(p) == nil || pausedLive(p) != StatePaused {
		t.Fatal("a complete saved machine is not paused")
	}
	for name, spoil := range map[string]func(p Paths){
		"no meta (unfinished pause)": func(p Paths) { os.Remove(filepath.Join(p.PauseDir(), supervisor.PausedMetaFile)) },
		"short state": func(p Paths) {
			os.WriteFile(filepath.Join(p.PauseDir(), supervisor.PausedStateFile), []byte("st"), 0o600)
		},
		"disk written": func(p Paths) {
			later := time.Now().Add(time.Minute)
			os.Chtimes(p.Disk(), later, later)
		},
		"disk replaced": func(p Paths) {
			os.Remove(p.Disk())
			os.WriteFile(p.Disk(), []byte("disk"), 0o600)
		},
		"damaged meta": func(p Paths) {
			os.WriteFile(filepath.Join(p.PauseDir(), supervisor.PausedMetaFile), []byte("{"), 0o600)
		},
	} {
		p := savedFixture(t)
		spoil(p)
		if paused(p) != nil || pausedLive(p) != StateStopped {
			t.Errorf("%s: still paused", name)
		}
	}
}

func TestLifecycleAndForkNames(t *testing.T) {
	neg, big, bad, pause := -1, MaxIdlePauseSeconds+1, "sleep", TTLPause
	for _, l := range []Lifecycle{{TTLSeconds: &neg}, {IdlePauseSeconds: &neg}, {IdlePauseSeconds: &big}, {TTLAction: &bad}} {
		if err := ValidateLifecycle(l); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: %v", l, err)
		}
	}
	if err := ValidateLifecycle(Lifecycle{TTLAction: &pause}); err != nil {
		t.Error(err)
	}
	if n, err := ForkNames("try", 3); err != nil || len(n) != 3 || n[0] != "try-1" || n[2] != "try-3" {
		t.Errorf("names: %v %v", n, err)
	}
	if n, err := ForkNames("", 2); err != nil || len(n) != 2 || n[0] != "" {
		t.Errorf("unnamed: %v %v", n, err)
	}
	for _, c := range []int{0, -1, MaxForks + 1} {
		if _, err := ForkNames("x", c); !errdefs.IsInvalidArgument(err) {
			t.Errorf("count %d: %v", c, err)
		}
	}
	if _, err := ForkNames("bad name", 1); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad prefix: %v", err)
	}
}
