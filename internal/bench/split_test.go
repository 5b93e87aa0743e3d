package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLastLogInts(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "workspaces", "w1")
	if err := os.MkdirAll(ws, 0o700); err != nil {
		t.Fatal(err)
	}
	log := `time=x level=INFO msg="vm up" restored=true boot_ms=300 agent_ms=200
time=x level=INFO msg="paused" ms=5
time=x level=INFO msg="vm up" restored=true boot_ms=250 agent_ms=190 sync_ms=9
`
	if err := os.WriteFile(filepath.Join(ws, "supervisor.log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got := lastLogInts(dir, "w1", "vm up")
	if got["boot_ms"] != 250 || got["agent_ms"] != 190 || got["sync_ms"] != 9 || len(got) != 3 {
		t.Fatalf("%v", got)
	}
	if lastLogInts(dir, "w1", "saved for forks") != nil || lastLogInts(dir, "nope", "vm up") != nil {
		t.Fatal("found a line that is not there")
	}
}
