//go:build linux

package agent

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// A put refused part-way leaves the tree as it was: the directories,
// symlinks and files it created are gone, the files it replaced are back.
func TestPutArchiveUndoesFailure(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	if err := os.WriteFile(filepath.Join(root, "kept.txt"), []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("kept.txt", filepath.Join(root, "ln")); err != nil {
		t.Fatal(err)
	}
	before := listTree(t, root)
	r := put(t, sess, filepath.Join(root, "sub", "dir"), 0, mkTar(t,
		tarFile("x/new.txt", "new", 0o644),
		tarLink(tar.TypeSymlink, "x/sym", "/etc"),
		tarFile("../../kept.txt", "clobbered", 0o644), // refused: outside sub/dir
	))
	wantError(t, r, agentproto.ErrCodeOutside)
	r = put(t, sess, root, 0, mkTar(t,
		tarDir("d/", 0o755),
		tarFile("d/a", "a", 0o644),
		tarFile("kept.txt", "clobbered", 0o644),
		tarLink(tar.TypeSymlink, "ln", "d/a"),
		tarLink(tar.TypeSymlink, "d/s", "/"),
		entry{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "p", Mode: 0o644}}, // refused
	))
	wantError(t, r, agentproto.ErrCodeBadArchive)
	if after := listTree(t, root); !slices.Equal(before, after) {
		t.Fatalf("after failed puts:\n%v\nwant\n%v", after, before)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "kept.txt")); string(b) != "old" {
		t.Errorf("kept.txt: %q", b)
	}
	if target, _ := os.Readlink(filepath.Join(root, "ln")); target != "kept.txt" {
		t.Errorf("ln -> %q", target)
	}
}

// Concurrent writers of one path are serialized: each succeeds, and the
// file holds one writer's whole content.
func TestPutArchiveConcurrentWriters(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			body := strings.Repeat(fmt.Sprint(i), 100_000)
			r := put(t, sess, root, 0, mkTar(t, tarFile("same.txt", body, 0o644)))
			if r.err != nil {
				errs <- fmt.Errorf("writer %d: %s: %s", i, r.err.Code, r.err.Message)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "same.txt"))
	if len(b) != 100_000 || strings.Count(string(b), string(b[:1])) != len(b) {
		t.Errorf("same.txt holds %d bytes, mixed writers", len(b))
	}
	if got := listTree(t, root); len(got) != 1 || !strings.HasPrefix(got[0], "same.txt ") {
		t.Errorf("left: %v", got)
	}
}

// A full filesystem is no_space, and the put is undone.
func TestPutArchiveNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	// The staging root must be on the workspace's filesystem: the small
	// tmpfs holds both.
	disk := t.TempDir()
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=128k"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(disk, syscall.MNT_DETACH) })
	sess, small, _ := archiveAgentIn(t, disk)
	r := put(t, sess, small, 0, mkTar(t,
		tarFile("fits", "x", 0o644),
		tarFile("big", strings.Repeat("y", 1<<20), 0o644)))
	wantError(t, r, agentproto.ErrCodeNoSpace)
	if !strings.Contains(r.err.Message, `"big"`) {
		t.Errorf("message: %q", r.err.Message)
	}
	if got := listTree(t, small); len(got) != 0 {
		t.Errorf("left on the full disk: %v", got)
	}
}

// listTree lists every entry under dir with its type and size.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, fmt.Sprintf("%s %v %d", rel, fi.Mode(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A put that only removes works on a full disk: it gives up the agent's
// space reserve for its plan; without the reserve it is no_space and
// changes nothing.
func TestPutArchiveRemovesOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	disk := t.TempDir()
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(disk, syscall.MNT_DETACH) })
	sess, root, _ := archiveAgentIn(t, disk)
	for _, name := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reserve := newReserve(filepath.Join(disk, "staging")).path
	makeReserve(reserve)
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != reserveSize {
		t.Fatalf("reserve: %v", err)
	}
	fillDisk(t, filepath.Join(disk, "fill"))
	if r := putRemoving(t, sess, root, []string{"a"}, mkTar(t)); r.err != nil {
		t.Fatalf("removing on a full disk: %v", r.err)
	}
	if _, err := os.Lstat(filepath.Join(root, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a: %v", err)
	}
	// Its plan and directory go after the answer, then the reserve is
	// back.
	settled := func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			fi, err := os.Stat(reserve)
			left, _ := os.ReadDir(filepath.Join(disk, "staging"))
			if err == nil && fi.Size() == reserveSize && len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the put: reserve %v, staging %v", err, left)
			}
		}
	}
	settled()
	if r := putRemoving(t, sess, root, []string{"b"}, mkTar(t)); r.err != nil {
		t.Fatalf("removing again on a full disk: %v", r.err)
	}
	settled()
	// Without a reserve (a disk filled before the agent could make it) the
	// put cannot commit: no_space, nothing changed.
	if err := os.Remove(reserve); err != nil {
		t.Fatal(err)
	}
	fillDisk(t, filepath.Join(disk, "fill2"))
	r := putRemoving(t, sess, root, []string{"c"}, mkTar(t))
	wantError(t, r, agentproto.ErrCodeNoSpace)
	if _, err := os.Lstat(filepath.Join(root, "c")); err != nil {
		t.Errorf("c after the refused removal: %v", err)
	}
}

// fillDisk writes the file name until its filesystem is full.
func fillDisk(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(make([]byte, 4<<20))
	f.Close()
	if !isNoSpace(err) {
		t.Fatalf("filling the disk: %v", err)
	}
}
