package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/ident"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
	"github.com/pyrovm/pyro/internal/vmm/backends"
)

// Quiet says "nothing to do" only for a workspace plainly at rest: every
// leftover Tidy would act on makes it false, and a pass over quiet
// workspaces records the earliest TTL ahead.
func TestQuiet(t *testing.T) {
	disk := backends.Default().DiskFile()
	now := time.Now()
	live := wire.Info{API: wire.APIVersion, Pid: os.Getpid(), PidStart: ident.ProcStart(os.Getpid())}
	dead := wire.Info{API: wire.APIVersion, Pid: 1 << 22, PidStart: 1}
	for _, c := range []struct {
		name  string
		rec   Record
		setup func(p Paths)
		quiet bool
	}{
		{name: "running", rec: Record{State: StateRunning}, setup: supervised(live), quiet: true},
		{name: "running, supervisor dead", rec: Record{State: StateRunning}, setup: supervised(dead)},
		{name: "running, no supervisor", rec: Record{State: StateRunning}},
		{name: "stopped", rec: Record{State: StateStopped}, quiet: true},
		{name: "stopped, supervisor alive", rec: Record{State: StateStopped}, setup: supervised(live)},
		{name: "stopped, saved machine left", rec: Record{State: StateStopped}, setup: mkdir(Paths.PauseDir)},
		{name: "paused, saved machine gone", rec: Record{State: StatePaused}, quiet: true},
		{name: "paused, saved machine unfinished", rec: Record{State: StatePaused}, setup: mkdir(Paths.PauseDir)},
		{name: "creating", rec: Record{State: StateStopped, Creating: true}},
		{name: "TTL passed", rec: Record{State: StateStopped, TTLSeconds: 1, LastActivityAt: now.Add(-time.Minute)}},
		{name: "TTL ahead", rec: Record{State: StateStopped, TTLSeconds: 60, LastActivityAt: now}, quiet: true},
		{name: "no lock", rec: Record{State: StateStopped}, setup: func(p Paths) { os.Remove(p.Lock()) }},
		{name: "reset cut", rec: Record{State: StateStopped}, setup: touch(Paths.PreResetDisk)},
		{name: "record temp", rec: Record{State: StateStopped}, setup: touch(func(p Paths) string { return filepath.Join(p.Dir, ".workspace.json123") })},
		{name: "snapshot temp", rec: Record{State: StateStopped}, setup: touch(func(p Paths) string { return p.SnapshotTmp("s") })},
		{name: "export under way", rec: Record{State: StateStopped}, setup: touch(func(p Paths) string { return filepath.Join(p.OutputsDir(), "x.json") })},
		{name: "unknown state", rec: Record{State: "odd"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			c.rec.ID = ident.NewID()
			p := Paths{Dir: filepath.Join(root, c.rec.ID), DiskFile: disk}
			if err := os.MkdirAll(p.Dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.Lock(), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := WriteRecord(p, &c.rec); err != nil {
				t.Fatal(err)
			}
			if c.setup != nil {
				c.setup(p)
			}
			if _, quiet := Quiet(p, now); quiet != c.quiet {
				t.Errorf("Quiet = %v, want %v", quiet, c.quiet)
			}
			stamp, ok := QuietPass(root, disk, now)
			if ok != c.quiet {
				t.Errorf("QuietPass = %v, want %v", ok, c.quiet)
			}
			if want := c.rec.ExpiresAt(); ok && !stamp.Due.Equal(want) {
				t.Errorf("stamp due %v, want %v", stamp.Due, want)
			}
		})
	}
}

func supervised(info wire.Info) func(Paths) {
	return func(p Paths) {
		b, _ := json.Marshal(info)
		if err := fsutil.WriteFileAtomic(p.Supervisor(), b, 0o600); err != nil {
			panic(err)
		}
	}
}

func mkdir(path func(Paths) string) func(Paths) {
	return func(p Paths) { _ = os.MkdirAll(path(p), 0o700) }
}

func touch(path func(Paths) string) func(Paths) {
	return func(p Paths) {
		_ = os.MkdirAll(filepath.Dir(path(p)), 0o700)
		_ = os.WriteFile(path(p), []byte("{"), 0o600)
	}
}
