package workspace

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/vm"
)

// A workspace recorded running whose supervisor is dead (killed, or powered
// off for a stop whose caller died) is reaped by the next tidy pass: its VM
// dir, socket and supervisor files go and it is recorded stopped. One whose
// supervisor lives is left alone.
func TestTidyReapsDeadSupervisor(t *testing.T) {
	m, p := stoppedWorkspace(t)
	rec, err := readRecord(p)
	if err != nil {
		t.Fatal(err)
	}
	rec.State = StateRunning
	if err := writeRecord(p, rec); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	writeInfo(t, p.Supervisor(), dead.Process.Pid)
	vmDir := filepath.Join(p.RunDir(), "0123456789ac")
	leftovers := []string{p.Socket(), p.Supervisor(), filepath.Join(vmDir, "console.log")}
	for _, f := range leftovers[:1] {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(leftovers[2]), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftovers[2], []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The VM dir's owner is the dead supervisor.
	owner := fmt.Sprintf(`{"owner_pid": %d}`, dead.Process.Pid)
	if err := os.WriteFile(filepath.Join(vmDir, "owner.json"), []byte(owner), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Tidy(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, f := range leftovers {
		if _, err := os.Lstat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", f, err)
		}
	}
	if rec, err := readRecord(p); err != nil || rec.State != StateStopped {
		t.Fatalf("record after tidy: %v %+v", err, rec)
	}

	// A live supervisor (this test process stands in for it) keeps it running.
	rec.State = StateRunning
	if err := writeRecord(p, rec); err != nil {
		t.Fatal(err)
	}
	writeInfo(t, p.Supervisor(), os.Getpid())
	if _, _, err := m.Tidy(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if rec, _ := readRecord(p); rec.State != StateRunning {
		t.Fatalf("a live supervisor's workspace was recorded %s", rec.State)
	}
	if _, err := os.Stat(p.Supervisor()); err != nil {
		t.Fatalf("a live supervisor's record was removed: %v", err)
	}
}

func writeInfo(t *testing.T, path string, pid int) {
	t.Helper()
	b, _ := json.Marshal(supervisor.Info{Pid: pid, PidStart: vm.ProcStart(pid)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A record write's temporary left by a process killed mid-write goes with
// the next tidy; a fresh one (a write under way) and the record stay.
func TestTidyRemovesDeadRecordTemps(t *testing.T) {
	m, p := stoppedWorkspace(t)
	dead := filepath.Join(p.Dir, ".workspace.json123")
	live := filepath.Join(p.Dir, ".workspace.json456")
	for _, f := range []string{dead, live} {
		if err := os.WriteFile(f, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * recordTempAge)
	if err := os.Chtimes(dead, old, old); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Tidy(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead writer's temporary kept: %v", err)
	}
	for _, f := range []string{live, p.Record()} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("%s removed: %v", f, err)
		}
	}
}
