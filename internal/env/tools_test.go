package env

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestCheckToolsMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := extraToolDirs
	extraToolDirs = nil
	defer func() { extraToolDirs = saved }()

	err := checkTools(toolMmdebstrap)
	if errdefs.CodeOf(err) != errdefs.CodeHostToolMissing || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("code %q: %v", errdefs.CodeOf(err), err)
	}
	if !strings.Contains(err.Error(), "install it with: apt-get install -y mmdebstrap") {
		t.Fatalf("message %q", err.Error())
	}
	err = checkTools(toolMkfsExt4)
	if !strings.Contains(err.Error(), "mkfs.ext4") || !strings.Contains(err.Error(), "apt-get install -y e2fsprogs") {
		t.Fatalf("message %q", err.Error())
	}
	// Several at once: one message, each package once.
	err = checkTools(kernelTools...)
	msg := err.Error()
	for _, want := range []string{"make", "gcc", "flex", "bison", "bc", "xz", "dpkg-query",
		"apt-get install -y dpkg", "build-essential", "xz-utils"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if strings.Count(msg, "build-essential") != 1 {
		t.Errorf("build-essential listed twice: %s", msg)
	}
	// A file tool.
	err = checkTools(hostTool{File: filepath.Join(t.TempDir(), "libelf.h"), Package: "libelf-dev"})
	if !strings.Contains(err.Error(), "apt-get install -y libelf-dev") {
		t.Fatalf("file tool: %v", err)
	}

	// Found through PATH.
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "mmdebstrap"), []byte("#!/bin/sh\n"), 0o755)
	t.Setenv("PATH", bin)
	if err := checkTools(toolMmdebstrap); err != nil {
		t.Fatal(err)
	}
}

func TestCheckToolsSbinFallback(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	sbin := t.TempDir()
	os.WriteFile(filepath.Join(sbin, "mkfs.ext4"), []byte("#!/bin/sh\n"), 0o755)
	saved := extraToolDirs
	extraToolDirs = []string{sbin}
	defer func() { extraToolDirs = saved }()
	if err := checkTools(toolMkfsExt4); err != nil {
		t.Fatal(err)
	}
	if p, _ := lookTool("mkfs.ext4"); p != filepath.Join(sbin, "mkfs.ext4") {
		t.Fatalf("lookTool = %q", p)
	}
}

func TestPullChecksToolsUpFront(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to get past the root check")
	}
	t.Setenv("PATH", t.TempDir())
	saved := extraToolDirs
	extraToolDirs = nil
	defer func() { extraToolDirs = saved }()
	s := newTestStore(t, Options{AgentPath: writeStaticELF(t)})
	_, err := s.Pull(context.Background(), "debian:12-base", false)
	if errdefs.CodeOf(err) != errdefs.CodeHostToolMissing {
		t.Fatalf("pull: %v", err)
	}
	// Nothing was started: no build dirs, no logs.
	for _, d := range []string{"tmp", "logs", "kernels", "bases"} {
		entries, _ := os.ReadDir(filepath.Join(s.root, d))
		if len(entries) > 0 {
			t.Errorf("%s/ not empty after a refused pull", d)
		}
	}
	for _, want := range []string{"mmdebstrap", "mkfs.ext4", "flex", "apt-get install -y"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
}

func TestToolEnvStripsMakeVars(t *testing.T) {
	t.Setenv("MAKEFLAGS", "-j99 --jobserver-auth=3,4")
	t.Setenv("ARCH", "arm64")
	t.Setenv("KBUILD_OUTPUT", "/elsewhere")
	env := strings.Join(toolEnv("TMPDIR=/x"), "\n")
	for _, bad := range []string{"MAKEFLAGS=", "ARCH=arm64", "KBUILD_OUTPUT="} {
		if strings.Contains(env, bad) {
			t.Errorf("toolEnv keeps %s", bad)
		}
	}
	if !strings.Contains(env, "TMPDIR=/x") || !strings.Contains(env, "/usr/sbin") || !strings.Contains(env, "LC_ALL=C") {
		t.Errorf("toolEnv: %s", env)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("PYRO_CACHE_DIR", "/x/pyro-cache")
	if d, _ := DefaultCacheDir(); d != "/x/pyro-cache" {
		t.Fatal(d)
	}
	t.Setenv("PYRO_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, _ := DefaultCacheDir(); d != "/xdg/pyro" {
		t.Fatal(d)
	}
	t.Setenv("XDG_CACHE_HOME", "relative")
	t.Setenv("HOME", "/home/u")
	if d, _ := DefaultCacheDir(); d != "/home/u/.cache/pyro" {
		t.Fatal(d)
	}
	if s := NewStore(Options{}); s.CacheDir() != "/home/u/.cache/pyro" {
		t.Fatal(s.CacheDir())
	}
}
