//go:build linux

package agent

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/yamux"
	"github.com/pyrovm/pyro/internal/agentproto"
)

// crashCase is one put the crash tests stop at every step: the archive
// alone, or the archive with removals.
type crashCase struct {
	name   string
	remove []string
}

// The removals take a file, a file beneath a symlinked directory, a
// symlink (not its target) and a file the archive puts a directory at.
var crashCases = []crashCase{
	{"places", nil},
	{"removals", []string{"gone.txt", "ls/gone.txt", "lgone", "r"}},
}

// crashTree is the workspace before the crash tests' put: files it
// replaces, a symlink it replaces, directories it merges into, and what
// the removals take.
func crashTree(t *testing.T, root string) {
	t.Helper()
	for name, body := range map[string]string{"a.txt": "old a", "sub/b.txt": "old b", "d/keep": "keep",
		"gone.txt": "gone", "sub/gone.txt": "gone too", "r": "file, then a directory"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(root, name), testTime, testTime); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"l": "a.txt", "ls": "sub", "lgone": "d"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// crashArchive touches every kind of place: replaced files, a replaced
// symlink, a new file in an existing directory, a new directory tree under
// a new destination parent, a hard link, a merged directory's mode; with
// removals also a new directory where a removed file was.
func crashArchive(t *testing.T, c crashCase) []byte {
	entries := []entry{
		tarFile("a.txt", "new a", 0o600),
		tarFile("sub/b.txt", "new b", 0o644),
		tarFile("sub/new.txt", "new", 0o644),
		tarDir("d/", 0o700),
		tarFile("n/e/w/c.txt", strings.Repeat("c", 100_000), 0o644),
		tarLink(tar.TypeSymlink, "l", "sub/b.txt"),
		tarLink(tar.TypeLink, "h", "a.txt"),
		tarFile("a.txt", "newer a", 0o640), // the later entry wins; h keeps the first
	}
	if c.remove != nil {
		entries = append(entries, tarFile("r/x.txt", "x", 0o644))
	}
	return mkTar(t, entries...)
}

// treeState describes every entry under root: kind, mode, content or
// target, mtime of non-directories and link count.
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" %q mtime %d links %d", b[:min(len(b), 16)], fi.ModTime().Unix(), fi.Sys().(*syscall.Stat_t).Nlink)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantedStates runs the put without a crash into a fresh tree and returns
// the states before and after it.
func wantedStates(t *testing.T, c crashCase) (before, after map[string]string) {
	sess, root, _ := archiveAgent(t)
	crashTree(t, root)
	before = treeState(t, root)
	if r := putRemoving(t, sess, root, c.remove, crashArchive(t, c)); r.err != nil {
		t.Fatal(r.err)
	}
	return before, treeState(t, root)
}

// The removals of the crash case leave what they should: the removed
// entries gone, the symlinks' targets kept.
func TestPutCrashCaseRemoves(t *testing.T) {
	_, after := wantedStates(t, crashCases[1])
	for _, gone := range []string{"gone.txt", "sub/gone.txt", "lgone"} {
		if desc, ok := after[gone]; ok {
			t.Errorf("%s is still there: %s", gone, desc)
		}
	}
	for _, kept := range []string{"d/keep", "ls", "sub/b.txt"} {
		if _, ok := after[kept]; !ok {
			t.Errorf("%s was removed", kept)
		}
	}
	if !strings.HasPrefix(after["r"], "d") || !strings.Contains(after["r/x.txt"], `"x"`) {
		t.Errorf("r: %s, r/x.txt: %s", after["r"], after["r/x.txt"])
	}
}

// A put stopped at any point by a crash is, after the recovery pass the
// agent runs at start, either wholly there or wholly absent: absent when
// the crash came before the commit point, there when after.
func TestPutCrashRecovery(t *testing.T) {
	for _, c := range crashCases {
		t.Run(c.name, func(t *testing.T) { crashRecovery(t, c) })
	}
}

func crashRecovery(t *testing.T, c crashCase) {
	before, after := wantedStates(t, c)
	if maps.Equal(before, after) {
		t.Fatal("the put changes nothing")
	}
	// Count the steps (removals and places).
	steps := 0
	applyHook = func(i int) bool { steps = max(steps, i); return false }
	sess, root, _ := archiveAgent(t)
	crashTree(t, root)
	r := putRemoving(t, sess, root, c.remove, crashArchive(t, c))
	applyHook = nil
	if r.err != nil {
		t.Fatal(r.err)
	}
	if steps < 6+len(c.remove) {
		t.Fatalf("only %d steps", steps)
	}

	type point struct {
		name    string
		commit  string // commitHook phase
		apply   int    // applyHook step, when commit is ""
		forward bool
	}
	points := []point{{"staged", "staged", 0, false}, {"synced", "synced", 0, false}}
	for i := 0; i <= steps; i++ {
		points = append(points, point{fmt.Sprintf("step %d of %d", i, steps), "", i, true})
	}
	for _, p := range points {
		t.Run(p.name, func(t *testing.T) {
			root, staging, sess := crashAgent(t)
			if p.commit != "" {
				commitHook = func(phase string) bool { return phase == p.commit }
			} else {
				applyHook = func(i int) bool { return i == p.apply }
			}
			r := putRemoving(t, sess, root, c.remove, crashArchive(t, c))
			commitHook, applyHook = nil, nil
			if r.err == nil {
				t.Fatal("the put did not stop")
			}
			left, _ := os.ReadDir(staging)
			if len(left) != 1 {
				t.Fatalf("staging root after the crash: %v", left)
			}
			mid := treeState(t, root)
			if p.forward && p.apply > 0 && p.apply < steps && (maps.Equal(mid, before) || maps.Equal(mid, after)) {
				t.Errorf("the crash at %s left no half-applied tree to recover", p.name)
			}
			recoverPuts(staging, root)
			want := before
			if p.forward {
				want = after
			}
			if got := treeState(t, root); !maps.Equal(got, want) {
				t.Errorf("after recovery:\n%s\nwant\n%s", show(got), show(want))
			}
			if left, _ := os.ReadDir(staging); len(left) != 0 {
				t.Errorf("staging root after recovery: %v", left)
			}
			// A second pass (a crash during the first) changes nothing.
			recoverPuts(staging, root)
			if got := treeState(t, root); !maps.Equal(got, want) {
				t.Errorf("after a second recovery:\n%s", show(got))
			}
		})
	}
}

// crashAgent starts an agent over a fresh workspace holding crashTree, with
// its staging root beside it.
func crashAgent(t *testing.T) (root, staging string, sess *yamux.Session) {
	t.Helper()
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	root, staging = filepath.Join(dir, "workspace"), filepath.Join(dir, "staging")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	crashTree(t, root)
	return root, staging, startAgent(t, Options{WorkspaceRoot: root, StagingRoot: staging})
}

// A crash while a failed put was being rolled back (abort-*) is rolled back
// at start, from any point of the apply.
func TestPutCrashAbortRecovery(t *testing.T) {
	for _, c := range crashCases {
		before, _ := wantedStates(t, c)
		steps := []int{1, 3, 6} // with removals: two of them, one place
		if c.remove != nil {
			steps = append(steps, 9)
		}
		for _, step := range steps {
			t.Run(fmt.Sprint(c.name, step), func(t *testing.T) {
				root, staging, sess := crashAgent(t)
				applyHook = func(i int) bool { return i == step }
				r := putRemoving(t, sess, root, c.remove, crashArchive(t, c))
				applyHook = nil
				if r.err == nil {
					t.Fatal("the put did not stop")
				}
				left, _ := filepath.Glob(filepath.Join(staging, commitPrefix+"*"))
				if len(left) != 1 {
					t.Fatalf("commit dirs: %v", left)
				}
				// What abort does first, then the crash.
				if err := os.Rename(left[0], strings.Replace(left[0], commitPrefix, abortPrefix, 1)); err != nil {
					t.Fatal(err)
				}
				recoverPuts(staging, root)
				if got := treeState(t, root); !maps.Equal(got, before) {
					t.Errorf("after recovery:\n%s\nwant\n%s", show(got), show(before))
				}
				if left, _ := os.ReadDir(staging); len(left) != 0 {
					t.Errorf("staging root after recovery: %v", left)
				}
			})
		}
	}
}

// A put that fails after its commit point (here: a directory appears where
// its new tree is to go, after the removals and three of its files are
// placed) is undone at once and answers an error: the removed entries are
// back too.
func TestPutFailsAfterCommit(t *testing.T) {
	for _, c := range crashCases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := wantedStates(t, c)
			sess, root, _ := archiveAgent(t)
			crashTree(t, root)
			applyHook = func(i int) bool {
				if i == len(c.remove)+3 { // a.txt, sub/b.txt, sub/new.txt are in place; n is next
					_ = os.Mkdir(filepath.Join(root, "n"), 0o755)
				}
				return false
			}
			r := putRemoving(t, sess, root, c.remove, crashArchive(t, c))
			applyHook = nil
			wantError(t, r, agentproto.ErrCodeInternal)
			if !strings.Contains(r.err.Message, "nothing of") {
				t.Errorf("message: %q", r.err.Message)
			}
			got := treeState(t, root)
			if !strings.HasPrefix(got["n"], "d") {
				t.Errorf("n: %s", got["n"])
			}
			delete(got, "n")
			if !maps.Equal(got, before) {
				t.Errorf("after the failed put:\n%s\nwant\n%s", show(got), show(before))
			}
		})
	}
}

// A destination on a filesystem a guest command mounted inside the
// workspace is refused (a rename cannot cross mounts), before anything is
// written.
func TestPutRefusesOtherMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	sess, root, _ := archiveAgent(t)
	mnt := filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	for _, tc := range []struct{ dest, name string }{{mnt, "x"}, {root, "mnt/x"}, {filepath.Join(mnt, "new"), "x"}} {
		r := put(t, sess, tc.dest, 0, mkTar(t, tarFile("top", "t", 0o644), tarFile(tc.name, "x", 0o644)))
		wantError(t, r, agentproto.ErrCodeBadRequest)
		if got := listTree(t, root); !slices.Equal(got, []string{"mnt dtrwxrwxrwx 40"}) {
			t.Errorf("put to %s %s left %v", tc.dest, tc.name, got)
		}
	}
}

func show(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "  %s: %s\n", k, m[k])
	}
	return b.String()
}

// Recovery survives what it cannot read (a guest command may have written
// into the staging root): it logs, removes it and goes on.
func TestPutRecoveryOddEntries(t *testing.T) {
	dir := t.TempDir()
	root, staging := filepath.Join(dir, "workspace"), filepath.Join(dir, "staging")
	for _, d := range []string{root, filepath.Join(staging, commitPrefix+"bad"), filepath.Join(staging, abortPrefix+"noplan")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		filepath.Join(staging, commitPrefix+"bad", planName): "{not json",
		filepath.Join(staging, "stray"):                      "x",
		filepath.Join(root, "kept"):                          "kept",
	} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recoverPuts(staging, root)
	if left, _ := os.ReadDir(staging); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	if got := listTree(t, root); !slices.Equal(got, []string{"kept -rw-r--r-- 4"}) {
		t.Errorf("workspace: %v", got)
	}
	recoverPuts(filepath.Join(dir, "missing"), root) // no staging root: nothing to do
}
