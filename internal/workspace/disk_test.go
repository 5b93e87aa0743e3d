package workspace

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestParseLsP(t *testing.T) {
	out := "/12/040755/0/0/.//\n/2/040755/0/0/..//\n" +
		"/13/100644/0/0/a b.txt/6/\n" +
		"/19/100644/1000/1000/new\nline/1/\n" +
		"/20/100644/0/0/quo\"te/1/\n" +
		"/15/100600/0/0/bad\xffname\t<1>/2/\n" +
		"/18/120777/0/0/link/11/\n" +
		"/17/010644/0/0/fifo/0/\n" +
		"/21/040700/0/0/sub//\n" +
		"/23/100644/0/0/\n\n/3/\n\n"
	got, err := parseLsP([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []dirent{
		{13, 0o100644, "a b.txt", 6},
		{19, 0o100644, "new\nline", 1},
		{20, 0o100644, "quo\"te", 1},
		{15, 0o100600, "bad\xffname\t<1>", 2},
		{18, 0o120777, "link", 11},
		{17, 0o010644, "fifo", 0},
		{21, 0o040700, "sub", 0},
		{23, 0o100644, "\n\n", 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	kinds := []string{}
	for _, e := range got {
		kinds = append(kinds, e.kind())
	}
	if !reflect.DeepEqual(kinds, []string{"file", "file", "file", "file", "symlink", "other", "dir", "file"}) {
		t.Fatalf("kinds %v", kinds)
	}

	// Not a directory: debugfs prints an empty line (the error goes to stderr).
	for _, s := range []string{"", "\n", "\n\n"} {
		if _, err := parseLsP([]byte(s)); err != errNotDir {
			t.Errorf("%q: %v", s, err)
		}
	}
	// Whatever does not split into exact records is refused, not guessed at.
	for _, s := range []string{
		"junk\n",
		"/13/100644/0/0/a/6/\nX/14/100644/0/0/b/1/\n",  // separator not a newline
		"/13/100644/0/0/a/6/",                          // no separator
		"/13/100644/0/0/a/6/\n/14/100644/0/0/b/1",      // truncated
		"/x/100644/0/0/a/6/\n",                         // inode
		"/0/100644/0/0/a/6/\n",                         // inode 0
		"/13/1006449/0/0/a/6/\n",                       // mode
		"/13/100648/0/0/a/6/\n",                        // not octal
		"/13/100644/-1/0/a/6/\n",                       // uid
		"/13/100644/0/0//6/\n",                         // empty name
		"/13/100644/0/0/a/+6/\n",                       // size
		"/13/100644/0/0/a//\n",                         // file without size
		"/13/040755/0/0/d/4096/\n",                     // dir with size
		"/13/100644/0/0/a\x00b/6/\n",                   // NUL
		"/13/100644/0/0/a/6/\n\n/14/100644/0/0/b/1/\n", // double newline before the end
	} {
		if _, err := parseLsP([]byte(s)); err != errBadListing {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// A real ext4 image with hostile names, read through debugfs exactly as the
// disk tools do (no VM needed).
func TestDiskViewOnImage(t *testing.T) {
	dfs, err := env.RequireTool("debugfs", "e2fsprogs")
	if err != nil {
		t.Skip(err)
	}
	mkfs, err := env.RequireTool("mkfs.ext4", "e2fsprogs")
	if err != nil {
		t.Skip(err)
	}
	root := t.TempDir()
	ws := filepath.Join(root, "workspace")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(ws, "sub dir"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc", "secret"), []byte("host-only"), 0o600))
	files := map[string]string{"a b.txt": "hello\n", "new\nline": "nl", "quo\"te": "q", "bad\xffname": "\xff\xfe", "sub dir/deep": "deep\n", "-R": "dash"}
	for n, c := range files {
		must(os.WriteFile(filepath.Join(ws, n), []byte(c), 0o644))
	}
	must(os.Symlink("../etc", filepath.Join(ws, "escape")))
	must(os.Symlink("/etc/secret", filepath.Join(ws, "abs")))
	must(syscall.Mkfifo(filepath.Join(ws, "fifo"), 0o644))
	img := filepath.Join(t.TempDir(), "img.raw")
	if b, err := exec.Command(mkfs, "-q", "-d", root, img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, b)
	}
	v := &diskView{debugfs: dfs, img: img}
	ctx := t.Context()

	ents, err := v.listDir(ctx, rootIno, "/")
	if err != nil {
		t.Fatal(err)
	}
	ws0, err := v.lookup(ctx, "/workspace")
	if err != nil || !ws0.isDir() {
		t.Fatalf("lookup /workspace: %+v %v (root %v)", ws0, err, ents)
	}
	list, err := v.listDir(ctx, ws0.Ino, "/workspace")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, e := range list {
		names[e.Name] = e.kind()
	}
	want := map[string]string{"a b.txt": "file", "new\nline": "file", "quo\"te": "file", "bad\xffname": "file", "-R": "file",
		"sub dir": "dir", "escape": "symlink", "abs": "symlink", "fifo": "other", "lost+found": "dir"}
	delete(names, "lost+found")
	delete(want, "lost+found")
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("names %q\nwant %q", names, want)
	}
	for n, c := range files {
		e, err := v.lookup(ctx, "/workspace/"+n)
		if err != nil {
			t.Fatalf("lookup %q: %v", n, err)
		}
		b, err := v.run(ctx, "cat <"+itoa(e.Ino)+">", 1<<20)
		if err != nil || string(b) != c || e.Size != int64(len(c)) {
			t.Fatalf("cat %q: %q %v (size %d)", n, b, err, e.Size)
		}
	}
	for p, code := range map[string]string{
		"/workspace/escape/secret": "is_symlink",
		"/workspace/abs":           "is_symlink",
		"/workspace/missing":       "not_found",
		"/workspace/a b.txt/x":     "not_a_directory",
	} {
		if _, err := v.lookup(ctx, p); errdefs.CodeOf(err) != code {
			t.Errorf("lookup %s: %v, want %s", p, err, code)
		}
	}
	e, _ := v.lookup(ctx, "/workspace/a b.txt")
	if _, err := v.run(ctx, "cat <"+itoa(e.Ino)+">", 4); err != errTooMuchOutput {
		t.Errorf("bounded output: %v", err)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
