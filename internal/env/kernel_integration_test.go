package env

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func skipWithoutKernelTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("uses the real kernel source: run without -short")
	}
	if err := checkTools(kernelTools...); err != nil {
		t.Skip(err)
	}
}

// Canceling a kernel build kills it promptly and leaves no build tree.
func TestIntegrationKernelBuildCancel(t *testing.T) {
	skipWithoutKernelTools(t)
	s := NewStore(Options{CacheDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Kernel(ctx)
	if errdefs.CodeOf(err) != errdefs.CodeTimeout {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(entries) != 0 {
		t.Fatalf("build tree left: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, "kernels")); len(entries) != 0 {
		t.Fatalf("kernel installed: %v", entries)
	}
}

// The real build (about 5 minutes on 2 cores): PYRO_TEST_KERNEL_BUILD=1.
func TestIntegrationKernelBuild(t *testing.T) {
	skipWithoutKernelTools(t)
	if os.Getenv("PYRO_TEST_KERNEL_BUILD") != "1" {
		t.Skip("set PYRO_TEST_KERNEL_BUILD=1 to build the guest kernel from source")
	}
	var last Event
	var msgs []string
	s := NewStore(Options{CacheDir: t.TempDir(), Progress: func(ev Event) {
		if ev.Done > 0 {
			last = ev
		} else {
			msgs = append(msgs, ev.Message)
		}
	}})
	start := time.Now()
	k, err := s.Kernel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel build: %s, %d compile steps reported (estimate %d); %s",
		time.Since(start).Round(time.Second), last.Done, kernelCompileEstimate, strings.Join(msgs, " | "))
	version, _ := kernelSourceVersion(context.Background())
	if k.ConfigHash != kernelConfigHash(kernelFragment, version) || !strings.HasPrefix(k.Release, "6.1") {
		t.Fatalf("kernel %+v", k)
	}
	f, err := elf.Open(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || !hasPVHNote(f) {
		t.Fatal("vmlinux is not an x86-64 ELF with a PVH entry note")
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(entries) != 0 {
		t.Fatalf("build tree left: %v", entries)
	}
	// Reuse: no second build.
	start = time.Now()
	if k2, err := s.Kernel(context.Background()); err != nil || k2 != k || time.Since(start) > 5*time.Second {
		t.Fatalf("reuse: %+v %v", k2, err)
	}
}

// hasPVHNote looks for XEN_ELFNOTE_PHYS32_ENTRY (type 18, owner "Xen").
func hasPVHNote(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		for len(data) >= 12 {
			namesz := binary.LittleEndian.Uint32(data[0:])
			descsz := binary.LittleEndian.Uint32(data[4:])
			typ := binary.LittleEndian.Uint32(data[8:])
			nameEnd := 12 + (namesz+3)&^3
			end := nameEnd + (descsz+3)&^3
			if uint64(end) > uint64(len(data)) {
				break
			}
			if typ == 18 && bytes.HasPrefix(data[12:12+namesz], []byte("Xen")) {
				return true
			}
			data = data[end:]
		}
	}
	return false
}
