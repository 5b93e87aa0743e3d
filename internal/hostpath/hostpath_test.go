package hostpath

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// tree makes: outside/canary, project/{a.txt, sub/b.txt, etc-link -> /etc,
// out-link -> ../outside, abs-out -> outside (absolute), in-link -> sub},
// exports/escape -> outside, rootlink -> project.
func tree(t *testing.T) (tmp string, a *Access) {
	t.Helper()
	tmp = t.TempDir()
	for _, d := range []string{"outside", "project/sub", "exports"} {
		must(t, os.MkdirAll(filepath.Join(tmp, d), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(tmp, "outside/canary"), []byte("TOPSECRET"), 0o600))
	must(t, os.WriteFile(filepath.Join(tmp, "project/a.txt"), []byte("a"), 0o644))
	must(t, os.WriteFile(filepath.Join(tmp, "project/sub/b.txt"), []byte("b"), 0o644))
	must(t, os.Symlink("/etc", filepath.Join(tmp, "project/etc-link")))
	must(t, os.Symlink("../outside", filepath.Join(tmp, "project/out-link")))
	must(t, os.Symlink(filepath.Join(tmp, "outside"), filepath.Join(tmp, "project/abs-out")))
	must(t, os.Symlink("sub", filepath.Join(tmp, "project/in-link")))
	must(t, os.Symlink(filepath.Join(tmp, "outside"), filepath.Join(tmp, "exports/escape")))
	must(t, os.Symlink(filepath.Join(tmp, "project"), filepath.Join(tmp, "rootlink")))
	a, err := Open([]Grant{
		{Path: filepath.Join(tmp, "project"), Label: "project"},
		{Path: filepath.Join(tmp, "exports"), Write: true, Label: "exports"},
	})
	must(t, err)
	t.Cleanup(func() { a.Close() })
	return tmp, a
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := errdefs.CodeOf(err); got != code {
		t.Fatalf("code %q (%v), want %q", got, err, code)
	}
}

func TestSourcesOutsideTheRootsAreDenied(t *testing.T) {
	tmp, a := tree(t)
	for _, p := range []string{
		"/etc", "/etc/shadow", filepath.Join(tmp, "outside"), filepath.Join(tmp, "outside/canary"),
		filepath.Join(tmp, "project/etc-link"), filepath.Join(tmp, "project/etc-link/passwd"),
		filepath.Join(tmp, "project/out-link"), filepath.Join(tmp, "project/out-link/canary"),
		filepath.Join(tmp, "project/abs-out/canary"), filepath.Join(tmp, "project/../outside/canary"),
		filepath.Join(tmp, "project/sub/../../outside"), "../outside/canary", "etc-link",
		filepath.Join(tmp, "rootlink"), filepath.Join(tmp, "rootlink/a.txt"),
		filepath.Join(tmp, "exports/escape/canary"),
	} {
		s, err := a.OpenSource(p)
		if err == nil {
			s.Close()
			t.Errorf("%s: opened", p)
			continue
		}
		if errdefs.CodeOf(err) != CodeDenied {
			t.Errorf("%s: %v, want %s", p, err, CodeDenied)
		}
	}
}

func TestSourcesInsideTheRootsOpen(t *testing.T) {
	tmp, a := tree(t)
	for p, want := range map[string]string{
		filepath.Join(tmp, "project/a.txt"): "a",
		"a.txt":                             "a", // relative: under the first root
		"sub/b.txt":                         "b",
		filepath.Join(tmp, "project/in-link/b.txt"):    "b", // a symlink that stays inside
		filepath.Join(tmp, "project/sub/../a.txt"):     "a",
		filepath.Join(tmp, "exports/../project/a.txt"): "a",
	} {
		s, err := a.OpenSource(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		b, _ := io.ReadAll(s.File)
		s.Close()
		if string(b) != want {
			t.Errorf("%s: read %q", p, b)
		}
	}
	s, err := a.OpenSource(filepath.Join(tmp, "project"))
	must(t, err)
	defer s.Close()
	if s.Dir == nil {
		t.Fatal("the root itself is not opened as a directory")
	}
	if _, err := s.Dir.Stat("sub/b.txt"); err != nil {
		t.Error(err)
	}
	_, err = a.OpenSource(filepath.Join(tmp, "project/nope"))
	wantCode(t, err, errdefs.CodeInvalidArgument)
}

func TestTargetsOnlyInWritableRoots(t *testing.T) {
	tmp, a := tree(t)
	for _, p := range []string{
		"/tmp/pyro-hostpath-test-x", filepath.Join(tmp, "outside/x"), filepath.Join(tmp, "project/x"),
		filepath.Join(tmp, "exports/escape/x"), filepath.Join(tmp, "exports/../outside/x"),
		filepath.Join(tmp, "project/out-link/x"),
	} {
		tg, err := a.OpenTarget(p)
		if err == nil {
			tg.Close()
			t.Errorf("%s: opened for writing", p)
			continue
		}
		if errdefs.CodeOf(err) != CodeDenied {
			t.Errorf("%s: %v, want %s", p, err, CodeDenied)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(tmp, "outside")); len(entries) != 1 {
		t.Errorf("outside holds %d entries", len(entries))
	}
	_, err := a.OpenTarget(filepath.Join(tmp, "exports"))
	wantCode(t, err, "already_exists")
	_, err = a.OpenTarget(filepath.Join(tmp, "exports/escape")) // exists (as a symlink): never replaced
	wantCode(t, err, "already_exists")
	_, err = a.OpenTarget(filepath.Join(tmp, "exports/no/such/dir"))
	wantCode(t, err, errdefs.CodeInvalidArgument)
}

// A parent swapped for a symlink after OpenTarget is not followed: the
// output lands in the directory that was opened.
func TestTargetSurvivesASwappedParent(t *testing.T) {
	tmp, a := tree(t)
	sub := filepath.Join(tmp, "exports/sub")
	must(t, os.Mkdir(sub, 0o755))
	tg, err := a.OpenTarget("sub/out.txt") // relative: under the first writable root
	must(t, err)
	defer tg.Close()
	if tg.Path != filepath.Join(sub, "out.txt") {
		t.Errorf("path %s", tg.Path)
	}
	must(t, os.Rename(sub, sub+"-old"))
	must(t, os.Symlink(filepath.Join(tmp, "outside"), sub))
	name := TempName(".t-")
	f, err := tg.CreateTemp(name)
	must(t, err)
	f.WriteString("data")
	f.Close()
	must(t, tg.Publish(name))
	if b, err := os.ReadFile(filepath.Join(sub+"-old", "out.txt")); err != nil || string(b) != "data" {
		t.Errorf("published file: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(tmp, "outside/out.txt")); err == nil {
		t.Error("written through the swapped-in symlink")
	}
}

// Publish never replaces what appeared at the output meanwhile, and a
// directory temp publishes one entry of it.
func TestPublishNeverReplaces(t *testing.T) {
	tmp, a := tree(t)
	tg, err := a.OpenTarget(filepath.Join(tmp, "exports/out"))
	must(t, err)
	defer tg.Close()
	name := TempName(".t-")
	dir, err := tg.MkdirTemp(name)
	must(t, err)
	must(t, dir.WriteFile("file", []byte("new"), 0o644))
	dir.Close()
	must(t, os.WriteFile(filepath.Join(tmp, "exports/out"), []byte("old"), 0o644))
	wantCode(t, tg.Publish(name+"/file"), "already_exists")
	if b, _ := os.ReadFile(filepath.Join(tmp, "exports/out")); string(b) != "old" {
		t.Errorf("replaced: %q", b)
	}
	must(t, os.Remove(filepath.Join(tmp, "exports/out")))
	must(t, tg.Publish(name+"/file"))
	must(t, tg.RemoveTemp(name))
	if b, _ := os.ReadFile(filepath.Join(tmp, "exports/out")); string(b) != "new" {
		t.Errorf("published %q", b)
	}
	if entries, _ := os.ReadDir(filepath.Join(tmp, "exports")); len(entries) != 2 { // escape, out
		t.Errorf("exports holds %v", entries)
	}
}

func TestGrantsAreChecked(t *testing.T) {
	tmp, _ := tree(t)
	for _, g := range []Grant{
		{Path: filepath.Join(tmp, "rootlink")},      // a symlink itself
		{Path: filepath.Join(tmp, "project/a.txt")}, // not a directory
		{Path: filepath.Join(tmp, "nope")},          // missing
		{Path: ""},
	} {
		if a, err := Open([]Grant{g}); err == nil {
			a.Close()
			t.Errorf("%q granted", g.Path)
		}
	}
	none, err := Open(nil)
	must(t, err)
	_, err = none.OpenSource(filepath.Join(tmp, "project"))
	wantCode(t, err, CodeDenied)
	_, err = none.OpenTarget(filepath.Join(tmp, "exports/x"))
	wantCode(t, err, CodeDenied)
}

// Unconfined (the operator's CLI and SDK), any path opens, and a source
// that is a symlink is followed.
func TestUnconfinedOpensAnything(t *testing.T) {
	tmp, _ := tree(t)
	var a *Access
	s, err := a.OpenSource(filepath.Join(tmp, "project/out-link/canary"))
	must(t, err)
	b, _ := io.ReadAll(s.File)
	s.Close()
	if string(b) != "TOPSECRET" {
		t.Errorf("read %q", b)
	}
	s, err = a.OpenSource(filepath.Join(tmp, "rootlink"))
	must(t, err)
	if s.Dir == nil {
		t.Error("a symlink to a directory is not opened as one")
	}
	s.Close()
	tg, err := a.OpenTarget(filepath.Join(tmp, "outside/new"))
	must(t, err)
	tg.Close()
}
