package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBinaryChoice(t *testing.T) {
	dir := t.TempDir()
	pyro := filepath.Join(dir, "pyro")
	if got := Binary(pyro); got != pyro {
		t.Fatalf("no pyro-supervisor beside: %s", got)
	}
	sup := filepath.Join(dir, BinaryName)
	if err := os.WriteFile(sup, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Binary(pyro); got != pyro {
		t.Fatalf("a pyro-supervisor that is not executable was chosen: %s", got)
	}
	if err := os.Chmod(sup, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Binary(pyro); got != sup {
		t.Fatalf("pyro-supervisor beside pyro: %s", got)
	}
	if got := Binary("pyro"); got != "pyro" {
		t.Fatalf("bare name: %s", got)
	}
	other := t.TempDir() // a directory of that name is no binary
	if err := os.Mkdir(filepath.Join(other, BinaryName), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Binary(filepath.Join(other, "pyro")); got != filepath.Join(other, "pyro") {
		t.Fatalf("a directory named pyro-supervisor was chosen: %s", got)
	}
}
