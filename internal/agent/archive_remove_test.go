//go:build linux

package agent

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// removeTree is the workspace of the removal tests: files, a directory, a
// symlink to a directory inside, one to a directory outside, one to a file.
func removeTree(t *testing.T, root, outside string) {
	t.Helper()
	for name, body := range map[string]string{"a.txt": "a", "sub/b.txt": "b", "sub/c.txt": "c", "d/keep": "k"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"ls": "sub", "lout": outside, "la": "a.txt"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// A put removes what it names in the same step as it writes: a file, a
// file reached through a symlinked directory, a symlink (not its target);
// the archive may write where a removed file was, and beneath it.
func TestPutArchiveRemoves(t *testing.T) {
	sess, root, outside := archiveAgent(t)
	removeTree(t, root, outside)
	r := putRemoving(t, sess, root, []string{"ls/b.txt", "la", "./d/keep", "a.txt"}, mkTar(t,
		tarFile("new.txt", "new", 0o644),
		tarFile("la/x", "beneath a removed symlink", 0o644),
		tarFile("d/keep", "rewritten", 0o644),
	))
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := treeState(t, root)
	want := []string{"d", "d/keep", "la", "la/x", "lout", "ls", "new.txt", "sub", "sub/c.txt"}
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, want) {
		t.Errorf("tree:\n%s\nwant the entries %v", show(got), want)
	}
	if !strings.HasPrefix(got["la"], "d") || !strings.Contains(got["d/keep"], `"rewritten"`) || !strings.HasSuffix(got["ls"], "-> sub") {
		t.Errorf("tree:\n%s", show(got))
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("outside: %v", err)
	}
	// An empty archive with removals only.
	if r := putRemoving(t, sess, root, []string{"new.txt"}, mkTar(t)); r.err != nil {
		t.Fatal(r.err)
	}
	if _, err := os.Lstat(filepath.Join(root, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("new.txt: %v", err)
	}
}

// A removal the agent cannot do refuses the whole put before anything is
// written, with a typed error.
func TestPutArchiveRemoveRefused(t *testing.T) {
	sess, root, outside := archiveAgent(t)
	removeTree(t, root, outside)
	before := listTree(t, root)
	for _, tc := range []struct {
		dest   string
		remove []string
		code   string
	}{
		{root, []string{"a.txt", "missing"}, agentproto.ErrCodeNotFound},
		{root, []string{"a.txt/x"}, agentproto.ErrCodeNotFound},
		{root, []string{"d"}, agentproto.ErrCodeBadRequest},
		{root, []string{"a.txt", "./a.txt"}, agentproto.ErrCodeBadRequest},
		{root, []string{"."}, agentproto.ErrCodeBadRequest},
		{root, []string{""}, agentproto.ErrCodeOutside},
		{root, []string{"../outside/secret"}, agentproto.ErrCodeOutside},
		{root, []string{"sub/../../outside/secret"}, agentproto.ErrCodeOutside},
		{root, []string{"/etc/passwd"}, agentproto.ErrCodeOutside},
		{root, []string{"lout/secret"}, agentproto.ErrCodeOutside},
		{filepath.Join(root, "lout"), []string{"secret"}, agentproto.ErrCodeOutside},
		{filepath.Join(root, "new"), []string{"a.txt"}, agentproto.ErrCodeNotFound},
		{root, manyNames(), agentproto.ErrCodeBadRequest},
	} {
		r := putRemoving(t, sess, tc.dest, tc.remove, mkTar(t, tarFile("written.txt", "w", 0o644)))
		if r.err == nil || r.err.Code != tc.code {
			t.Errorf("removing %.40q in %s: %v, want %s", tc.remove, tc.dest, r.err, tc.code)
		}
		if got := listTree(t, root); !slices.Equal(got, before) {
			t.Fatalf("after removing %.40q:\n%v\nwant\n%v", tc.remove, got, before)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("outside: %v", err)
	}
}

// manyNames takes more than MaxRemoveBytes (distinct names of existing
// files would be refused the same way).
func manyNames() []string {
	names := make([]string, agentproto.MaxRemoveBytes/64+1)
	for i := range names {
		names[i] = fmt.Sprintf("%063d", i)
	}
	return names
}
