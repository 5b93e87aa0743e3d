package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/vmm"
)

// The console tail leaves out the PCI line every microvm boot prints, and
// the QEMU log tail says when QEMU was killed by a signal (it prints
// nothing then).
func TestTailsExplainKill(t *testing.T) {
	dir := t.TempDir()
	console := "Linux version 6.1\nPCI: Fatal: No config space access function found\nrandom: crng init done\nlast words\n"
	if err := os.WriteFile(filepath.Join(dir, consoleLog), []byte(console), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Machine{cfg: vmm.Config{RuntimeDir: dir}, exited: make(chan struct{})}
	if got := m.ConsoleTail(2); got != "random: crng init done\nlast words" {
		t.Errorf("console tail %q", got)
	}
	if got := m.ConsoleTail(10); strings.Contains(got, "PCI") || !strings.HasPrefix(got, "Linux version") {
		t.Errorf("console tail %q", got)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if got := m.LogTail(5); got != "" {
		t.Errorf("log tail of a running VMM: %q", got)
	}
	_ = cmd.Process.Kill()
	m.waitErr = cmd.Wait()
	close(m.exited)
	if got := m.LogTail(5); got != Binary+" was killed by signal killed" {
		t.Errorf("log tail after kill -9: %q", got)
	}
}
