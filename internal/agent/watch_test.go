//go:build linux

package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The watch reports every change to what it watches, through symlinks and
// renames, and nothing else; after a change it is armed again.
func TestFSWatch(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	mkdir := func(rel string) {
		if err := os.MkdirAll(p(rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, text string) {
		if err := os.WriteFile(p(rel), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("etc/profile.d")
	mkdir("real/bin")
	mkdir("other")
	write("etc/profile", "a")
	write("real/target", "t")
	must(t, os.Symlink("../real/target", p("etc/linked"))) // a file reached through a symlink
	must(t, os.Symlink("real/bin", p("bin")))              // a directory reached through one
	files := []string{p("etc/profile"), p("etc/linked"), p("etc/missing")}
	dirs := []string{p("bin"), p("nosuch/bin")}

	w := newFSWatch()
	t.Cleanup(w.close)
	if !w.stale() {
		t.Fatal("an unarmed watch is not stale")
	}
	steps := []struct {
		name   string
		change func()
		stale  bool
	}{
		{"nothing", func() {}, false},
		{"a file next to a watched one", func() { write("etc/unrelated", "x") }, false},
		{"a file elsewhere", func() { write("other/f", "x") }, false},
		{"a watched file rewritten", func() { write("etc/profile", "b") }, true},
		{"a watched file's mode", func() { must(t, os.Chmod(p("etc/profile"), 0o600)) }, true},
		{"a symlink's target rewritten", func() { write("real/target", "u") }, true},
		{"a missing file created", func() { write("etc/missing", "m") }, true},
		{"a program added to a watched directory", func() { write("real/bin/tool", "#!/bin/sh\n") }, true},
		{"a program's mode", func() { must(t, os.Chmod(p("real/bin/tool"), 0o644)) }, true},
		{"a missing directory created", func() { mkdir("nosuch") }, true},
		{"the symlinked directory repointed", func() {
			mkdir("real/bin2")
			must(t, os.Remove(p("bin")))
			must(t, os.Symlink("real/bin2", p("bin")))
		}, true},
		{"the old directory, no longer watched", func() { write("real/bin/old", "x") }, false},
		{"the new one", func() { write("real/bin2/new", "x") }, true},
		{"a watched file renamed over", func() {
			write("etc/profile.new", "c")
			must(t, os.Rename(p("etc/profile.new"), p("etc/profile")))
		}, true},
	}
	w.arm(files, dirs)
	for _, st := range steps {
		st.change()
		if got := w.stale(); got != st.stale {
			t.Errorf("%s: stale %v, want %v", st.name, got, st.stale)
		}
		if w.stale() {
			w.arm(files, dirs)
		}
		if w.stale() {
			t.Fatalf("%s: stale right after arm", st.name)
		}
	}
	if os.Geteuid() != 0 {
		t.Log("mount table change not tried: needs root")
		return
	}
	// A mount anywhere may hide or show a watched path: a change.
	if err := unix.Mount("tmpfs", p("other"), "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(p("other"), unix.MNT_DETACH) })
	if !w.stale() {
		t.Error("a mount is not a change")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A flood of events that concern nothing watched ends the check after a
// bounded number of reads, as a change (the caller then looks the full way).
func TestFSWatchFlood(t *testing.T) {
	dir := t.TempDir()
	saved := maxDrain
	maxDrain = 2
	t.Cleanup(func() { maxDrain = saved })
	w := newFSWatch()
	t.Cleanup(w.close)
	w.arm([]string{filepath.Join(dir, "profile")}, nil)
	if w.stale() {
		t.Fatal("stale right after arm")
	}
	long := strings.Repeat("x", 200)
	for i := range 2000 { // ~2000 x 232 bytes of events: more than 2 reads of 64 KiB
		must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s%d", long, i)), nil, 0o644))
	}
	if !w.stale() {
		t.Error("a flood beyond the bound did not end the check as a change")
	}
}
