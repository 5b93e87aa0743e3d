package workspace

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// A workspace another VMM backend made is refused, with a code that says
// which backend to use, by every call that would touch its disk or VM;
// its record stays readable and updatable, and delete removes it.
func TestOtherBackendRefused(t *testing.T) {
	m, p := stoppedWorkspace(t)
	rec, err := store.ReadRecord(p)
	if err != nil {
		t.Fatal(err)
	}
	rec.Backend = "firecracker"
	if err := store.WriteRecord(p, rec); err != nil {
		t.Fatal(err)
	}
	ctx, id := t.Context(), rec.ID
	refused := map[string]error{}
	_, refused["start"] = m.Start(ctx, id)
	_, _, _, refused["exec"] = m.Exec(ctx, id, agentproto.ExecRequest{Argv: []string{"true"}}, nil, nil)
	_, _, refused["pause"] = m.Pause(ctx, id)
	_, _, refused["fork"] = m.Fork(ctx, id, []string{""})
	_, _, refused["reset"] = m.Reset(ctx, id, "", nil)
	for call, err := range refused {
		if code := errdefs.CodeOf(err); code != errdefs.CodeBackendMismatch {
			t.Errorf("%s: code %q (%v), want %s", call, code, err, errdefs.CodeBackendMismatch)
		}
	}
	if _, _, err := m.Status(ctx, id); err != nil {
		t.Errorf("status: %v", err)
	}
	name := "kept"
	if _, err := m.Update(ctx, id, &name, nil, nil); err != nil {
		t.Errorf("update: %v", err)
	}
	if _, err := m.Delete(ctx, id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := os.Stat(p.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delete left %s: %v", p.Dir, err)
	}

	// Records from before the field were all made by the first backend.
	m, p = stoppedWorkspace(t)
	if rec, _ := store.ReadRecord(p); rec.Backend != "" {
		t.Fatalf("fixture names a backend: %q", rec.Backend)
	}
	_, _, unlock, err := m.locked(rec.ID)
	if err != nil {
		t.Fatalf("a record without backend refused: %v", err)
	}
	unlock()
}

// A workspace whose image carries another guest agent protocol (one made
// before an upgrade) is refused before anything boots, with the way to its
// files; one of this protocol gets past the check.
func TestOldAgentRefused(t *testing.T) {
	m, p := stoppedWorkspace(t)
	rec, err := store.ReadRecord(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, proto := range []int{0, agentproto.ProtocolVersion - 1} {
		rec.AgentProtocol = proto
		if err := store.WriteRecord(p, rec); err != nil {
			t.Fatal(err)
		}
		_, err := m.Start(t.Context(), rec.ID)
		if code := errdefs.CodeOf(err); code != errdefs.CodeAgentProtocol || !strings.Contains(err.Error(), "pyro workspace disk export") {
			t.Errorf("protocol %d: %v (code %q), want %s naming disk export", proto, err, code, errdefs.CodeAgentProtocol)
		}
		if _, err := os.Stat(p.SupervisorPid()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("protocol %d: a supervisor was launched: %v", proto, err)
		}
	}
	rec.AgentProtocol = agentproto.ProtocolVersion
	if err := agentCompatible(rec); err != nil {
		t.Errorf("this protocol refused: %v", err)
	}
}
