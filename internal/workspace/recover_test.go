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

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// A workspace recorded running whose supervisor is dead (killed, or powered
// off for a stop whose caller died) is reaped by the next tidy pass: its VM
// dir, socket and supervisor files go and it is recorded stopped. One whose
// supervisor lives is left alone.
func TestTidyReapsDeadSupervisor(t *testing.T) {
	m, p := stoppedWorkspace(t)
	rec, err := store.ReadRecord(p)
	if err != nil {
		t.Fatal(err)
	}
	rec.State = StateRunning
	if err := store.WriteRecord(p, rec); err != nil {
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
	if rec, err := store.ReadRecord(p); err != nil || rec.State != StateStopped {
		t.Fatalf("record after tidy: %v %+v", err, rec)
	}

	// A live supervisor (this test process stands in for it) keeps it running.
	rec.State = StateRunning
	if err := store.WriteRecord(p, rec); err != nil {
		t.Fatal(err)
	}
	writeInfo(t, p.Supervisor(), os.Getpid())
	if _, _, err := m.Tidy(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if rec, _ := store.ReadRecord(p); rec.State != StateRunning {
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

// A call that targets one workspace skips the pass over the others while
// the last pass is fresh, but still tidies each workspace it resolves. A
// stale pass, or a TTL that came due since, brings the full pass back.
func TestTidyDue(t *testing.T) {
	m, a := stoppedWorkspace(t)
	b := m.paths("0123456789ac")
	if err := os.MkdirAll(b.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, _, err := m.Tidy(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	// Both become creates whose process died (their locks are free): a
	// pass undoes them.
	for _, p := range []Paths{a, b} {
		if err := store.WriteRecord(p, &Record{ID: filepath.Base(p.Dir), State: StateStopped, Creating: true}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.Lock(), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(p Paths) bool { _, err := os.Stat(p.Dir); return err == nil }

	m = NewManager(m.root, "pyro", m.backend, m.log)
	if rec, exp, err := m.TidyDue(t.Context(), now.Add(store.TidyEvery/2)); err != nil || len(rec)+len(exp) > 0 {
		t.Fatalf("a fresh pass was repeated: %v %v %v", rec, exp, err)
	}
	if !exists(a) || !exists(b) {
		t.Fatal("the skipped pass removed a workspace")
	}
	if _, err := m.Resolve("0123456789ab"); err == nil || !errdefs.IsNotFound(err) {
		t.Fatalf("the resolved dead create was not undone: %v", err)
	}
	if exists(a) || !exists(b) {
		t.Fatalf("resolving one workspace tidied: a %v, b %v", exists(a), exists(b))
	}

	m = NewManager(m.root, "pyro", m.backend, m.log)
	if rec, _, err := m.TidyDue(t.Context(), now.Add(store.TidyEvery)); err != nil || len(rec) != 1 || exists(b) {
		t.Fatalf("a stale pass was not repeated: %v %v, b kept %v", rec, err, exists(b))
	}

	// A TTL that comes due within store.TidyEvery of the last pass is acted on.
	c := m.paths("0123456789ad")
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Lock(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	at := now.Add(store.TidyEvery)
	if err := store.WriteRecord(c, &Record{ID: "0123456789ad", State: StateStopped, TTLSeconds: 1, LastActivityAt: at}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Tidy(t.Context(), at); err != nil {
		t.Fatal(err)
	}
	m = NewManager(m.root, "pyro", m.backend, m.log)
	if _, exp, err := m.TidyDue(t.Context(), at.Add(500*time.Millisecond)); err != nil || len(exp) != 0 {
		t.Fatalf("expired before its TTL: %v %v", exp, err)
	}
	if _, exp, err := m.TidyDue(t.Context(), at.Add(1100*time.Millisecond)); err != nil || len(exp) != 1 || exists(c) {
		t.Fatalf("a TTL due since the last pass was not acted on: %v %v", exp, err)
	}
}
