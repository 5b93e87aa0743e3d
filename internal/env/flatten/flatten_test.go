package flatten

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
)

func dir(name string) testutil.TarEntry {
	return testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func file(name, body string) testutil.TarEntry {
	return testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, Body: body}
}

func symlink(name, target string) testutil.TarEntry {
	return testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) testutil.TarEntry {
	return testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

func apply(t *testing.T, layers ...[]testutil.TarEntry) (string, error) {
	t.Helper()
	d := t.TempDir()
	tr, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i, l := range layers {
		if _, err := tr.Apply(t.Context(), testutil.Tar(t, l...), string(rune('A'+i))); err != nil {
			return d, err
		}
	}
	return d, nil
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyLayersFlattens(t *testing.T) {
	long := strings.Repeat("long-directory-name/", 8) + strings.Repeat("f", 150)
	setuid := file("usr/bin/su", "su")
	setuid.Header.Mode = 0o4755
	owned := file("home/u/notes", "mine")
	owned.Header.Uid, owned.Header.Gid = 1000, 1001
	capped := file("usr/bin/ping", "ping")
	capped.Header.PAXRecords = map[string]string{
		"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
		"SCHILY.xattr.user.dropped":        "x",
	}
	sticky := dir("scratch/")
	sticky.Header.Mode = 0o1777

	base := []testutil.TarEntry{
		dir("etc/"), file("etc/a", "a"), file("etc/b", "b1"),
		dir("d/"), file("d/x", "x"), dir("d/sub/"), file("d/sub/y", "y"),
		dir("usr/"), dir("usr/bin/"), setuid, capped, dir("home/"), dir("home/u/"), owned, sticky,
		file(long, "long"), symlink("bin", "usr/bin"),
	}
	changes := []testutil.TarEntry{
		file("etc/.wh.a", ""),                 // whiteout
		dir("d/"), file("d/.wh..wh..opq", ""), // opaque: x and sub go
		file("d/new", "new"),                                   // ...but this layer's own entry stays
		hardlink("etc/hard", "etc/b"),                          // hard link to a lower file
		symlink("etc/link", "b"),                               // relative symlink
		file("bin/tool", "through a relative in-tree symlink"), // lands in usr/bin
	}
	replace := []testutil.TarEntry{file("etc/b", "b2")}
	d, err := apply(t, base, changes, replace)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"etc/a", "d/x", "d/sub"} {
		if _, err := os.Lstat(filepath.Join(d, gone)); !os.IsNotExist(err) {
			t.Errorf("%s should be gone: %v", gone, err)
		}
	}
	if got := read(t, filepath.Join(d, "d/new")); got != "new" {
		t.Errorf("d/new = %q", got)
	}
	// The hard link keeps the bytes it was made with; etc/b was replaced later.
	if a, b := read(t, filepath.Join(d, "etc/hard")), read(t, filepath.Join(d, "etc/b")); a != "b1" || b != "b2" {
		t.Errorf("etc/hard %q etc/b %q", a, b)
	}
	if l, err := os.Readlink(filepath.Join(d, "etc/link")); err != nil || l != "b" {
		t.Errorf("etc/link -> %q %v", l, err)
	}
	if got := read(t, filepath.Join(d, "usr/bin/tool")); !strings.HasPrefix(got, "through") {
		t.Errorf("usr/bin/tool = %q", got)
	}
	if got := read(t, filepath.Join(d, long)); got != "long" {
		t.Errorf("long name = %q", got)
	}
	st, _ := os.Stat(filepath.Join(d, "usr/bin/su"))
	if st.Mode()&os.ModeSetuid == 0 || st.Mode().Perm() != 0o755 {
		t.Errorf("su mode %v", st.Mode())
	}
	st, _ = os.Stat(filepath.Join(d, "scratch"))
	if st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("scratch mode %v", st.Mode())
	}
	st, _ = os.Stat(filepath.Join(d, "home/u/notes"))
	if sys := st.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (sys.Uid != 1000 || sys.Gid != 1001) {
		t.Errorf("notes owner %d:%d", sys.Uid, sys.Gid)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(d, "usr/bin/ping"), "security.capability", buf); err != nil || n != 20 {
		t.Errorf("security.capability: %d bytes, %v", n, err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(d, "usr/bin/ping"), "user.dropped", buf); err == nil {
		t.Error("user.* xattrs must not be carried over")
	}
}

// Hostile layers: nothing lands outside the tree, names that climb out are
// refused with a typed error.
func TestApplyHostileLayers(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../evil", "a/../../evil", "./../evil"} {
		_, err := apply(t, []testutil.TarEntry{file(name, "x")})
		if errdefs.CodeOf(err) != errdefs.CodeImageUnsafe {
			t.Errorf("%s: got %v, want %s", name, err, errdefs.CodeImageUnsafe)
		}
	}
	if _, err := apply(t, []testutil.TarEntry{file("a", "x"), hardlink("b", "../../etc/passwd")}); errdefs.CodeOf(err) != errdefs.CodeImageUnsafe {
		t.Errorf("hard link out: %v", err)
	}
	if _, err := apply(t, []testutil.TarEntry{hardlink("b", victim)}); errdefs.CodeOf(err) != errdefs.CodeImageUnsafe {
		t.Errorf("hard link to an absolute host path: %v", err)
	}

	// An absolute symlink to a host directory, then a file "through" it,
	// then a symlink to a host file replaced by a regular file: everything
	// stays in the tree, chroot-style.
	dev := testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o666, Devmajor: 8}}
	d, err := apply(t,
		[]testutil.TarEntry{symlink("escape", outside), symlink("up", "../../../../.."+outside), symlink("x", victim), dev},
		[]testutil.TarEntry{file("escape/victim", "through abs"), file("up/new", "through rel"), file("x", "replaced")},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, victim); got != "host" {
		t.Fatalf("host file changed: %q", got)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("files appeared outside the tree: %v", entries)
	}
	if got := read(t, filepath.Join(d, outside, "victim")); got != "through abs" {
		t.Errorf("abs-link write landed at %q", got)
	}
	if got := read(t, filepath.Join(d, outside, "new")); got != "through rel" {
		t.Errorf("rel-link write landed at %q", got)
	}
	if st, err := os.Lstat(filepath.Join(d, "x")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("x should be a regular file now: %v %v", st, err)
	}
	if _, err := os.Lstat(filepath.Join(d, "dev/sda")); !os.IsNotExist(err) {
		t.Errorf("device node was created on the host: %v", err)
	}
}

func TestResolveFileChrootStyle(t *testing.T) {
	d, err := apply(t, []testutil.TarEntry{
		dir("bin/"), file("bin/busybox", "bb"), symlink("bin/sh", "/bin/busybox"),
		symlink("loop", "loop"),
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := Open(d)
	defer tr.Close()
	p, fi, err := tr.ResolveFile("/bin/sh")
	if err != nil || p != "bin/busybox" || !fi.Mode().IsRegular() {
		t.Fatalf("ResolveFile(/bin/sh) = %q %v %v", p, fi, err)
	}
	if _, _, err := tr.ResolveFile("/loop"); err == nil {
		t.Error("a symlink loop must not resolve")
	}
	if _, _, err := tr.ResolveFile("/bin/bash"); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRelativizeAbsoluteSymlinks(t *testing.T) {
	d, err := apply(t, []testutil.TarEntry{
		dir("usr/"), dir("usr/sbin/"), symlink("sbin", "/usr/sbin"), dir("etc/"), symlink("etc/alt", "/usr/sbin"),
		symlink("rel", "usr"), symlink("top", "/"),
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := Open(d)
	defer tr.Close()
	for name, want := range map[string]string{"sbin": "usr/sbin", "etc/alt": "../usr/sbin", "rel": "usr", "top": "."} {
		if err := tr.Relativize(name); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(filepath.Join(d, name)); got != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
	}
	if err := tr.Root().WriteFile("sbin/x", []byte("x"), 0o644); err != nil {
		t.Fatalf("os.Root through the rewritten link: %v", err)
	}
}
