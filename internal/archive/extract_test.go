package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// sandbox returns dest (empty) and a sentinel directory beside it holding
// one file; checkSentinel fails the test if anything under it changed.
func sandbox(t *testing.T) (dest, sentinel string, checkSentinel func()) {
	t.Helper()
	base := t.TempDir()
	dest = filepath.Join(base, "dest")
	sentinel = filepath.Join(base, "sentinel")
	for _, d := range []string{dest, sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(sentinel, "keep"), []byte("original"))
	before := snapshot(t, sentinel)
	return dest, sentinel, func() {
		t.Helper()
		sameTree(t, before, snapshot(t, sentinel))
	}
}

func TestExtractMalicious(t *testing.T) {
	for _, tc := range []struct {
		name string
		ents func(sentinel string) []tent
		code string
	}{
		{"dotdot", func(string) []tent { return []tent{{name: "../sentinel/keep", body: "pwned"}} }, CodePathOutsideWorkspace},
		{"absolute", func(s string) []tent { return []tent{{name: s + "/keep", body: "pwned"}} }, CodePathOutsideWorkspace},
		{"nested dotdot", func(string) []tent { return []tent{{name: "a/../../sentinel/keep", body: "pwned"}} }, CodePathOutsideWorkspace},
		{"chardev", func(string) []tent { return []tent{{name: "null", typ: tar.TypeChar}} }, CodeBadArchive},
		{"fifo", func(string) []tent { return []tent{{name: "p", typ: tar.TypeFifo}} }, CodeBadArchive},
		{"hardlink to /etc/passwd", func(string) []tent { return []tent{{name: "pw", typ: tar.TypeLink, link: "/etc/passwd"}} }, CodePathOutsideWorkspace},
		{"hardlink to sentinel", func(string) []tent {
			return []tent{{name: "k", typ: tar.TypeLink, link: "../sentinel/keep"}}
		}, CodePathOutsideWorkspace},
		{"hardlink through symlink", func(s string) []tent {
			return []tent{{name: "l", typ: tar.TypeSymlink, link: s}, {name: "k", typ: tar.TypeLink, link: "l/keep"}}
		}, CodeBadArchive},
		{"symlink to / then write through it", func(s string) []tent {
			// If this escaped it would write into the sentinel, not /etc.
			return []tent{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l" + s + "/keep", body: "pwned"}}
		}, CodePathOutsideWorkspace},
		{"symlink to /etc then write through it", func(string) []tent {
			return []tent{{name: "l", typ: tar.TypeSymlink, link: "/etc"}, {name: "l/pyro-archive-test-must-not-exist", body: "pwned"}}
		}, CodePathOutsideWorkspace},
		{"relative symlink escape", func(string) []tent {
			return []tent{{name: "d/up", typ: tar.TypeSymlink, link: "../../sentinel"}, {name: "d/up/keep", body: "pwned"}}
		}, CodePathOutsideWorkspace},
		{"symlink dir then new file in it", func(s string) []tent {
			return []tent{{name: "l", typ: tar.TypeSymlink, link: s}, {name: "l/new", body: "pwned"}}
		}, CodePathOutsideWorkspace},
		{"symlink then dir through it", func(s string) []tent {
			return []tent{{name: "l", typ: tar.TypeSymlink, link: s}, {name: "l/sub/", typ: tar.TypeDir}}
		}, CodePathOutsideWorkspace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest, sentinel, check := sandbox(t)
			_, err := Extract(context.Background(), bytes.NewReader(buildTar(t, tc.ents(sentinel))), dest, Limits{})
			wantCode(t, err, tc.code)
			check()
			if _, err := os.Lstat("/etc/pyro-archive-test-must-not-exist"); err == nil {
				os.Remove("/etc/pyro-archive-test-must-not-exist")
				t.Fatal("wrote into /etc")
			}
		})
	}
}

func TestExtractReplacesLinksInsteadOfFollowing(t *testing.T) {
	dest, sentinel, check := sandbox(t)
	// An earlier export left a symlink to a file outside; a new file of the
	// same name replaces the link and does not write through it.
	if err := os.Symlink(filepath.Join(sentinel, "keep"), filepath.Join(dest, "f")); err != nil {
		t.Fatal(err)
	}
	ents := []tent{
		{name: "f", body: "new", mode: 0o4755},
		{name: "g", typ: tar.TypeSymlink, link: filepath.Join(sentinel, "keep")},
		{name: "g", body: "replaced"},
		{name: "h", body: "hard"},
		{name: "h2", typ: tar.TypeLink, link: "h"},
		{name: "h", body: "h rewritten"}, // must not change h2
		{name: "dir/", typ: tar.TypeDir, mode: 0o500},
		{name: "dir/inner", body: "in a read-only dir"},
		{name: "abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
	}
	st, err := Extract(context.Background(), bytes.NewReader(buildTar(t, ents)), dest, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	check()
	if st.Entries != len(ents) {
		t.Errorf("entries %d, want %d", st.Entries, len(ents))
	}
	got := snapshot(t, dest)
	want := map[string]string{
		"f":         `file 755 2024-05-06T07:08:09Z "new"`, // setuid dropped
		"g":         `file 644 2024-05-06T07:08:09Z "replaced"`,
		"h":         `file 644 2024-05-06T07:08:09Z "h rewritten"`,
		"h2":        `file 644 2024-05-06T07:08:09Z "hard"`,
		"dir":       "dir 700", // owner rwx is kept so the tree stays usable
		"dir/inner": `file 644 2024-05-06T07:08:09Z "in a read-only dir"`,
		"abs":       "link -> /etc/passwd",
	}
	sameTree(t, want, got)
	fi, _ := os.Stat(filepath.Join(dest, "dir"))
	if !fi.ModTime().Equal(testTime) {
		t.Errorf("dir mtime %v, want %v", fi.ModTime(), testTime)
	}
}

func TestExtractDest(t *testing.T) {
	data := buildTar(t, []tent{{name: "a", body: "x"}})
	base := t.TempDir()
	_, err := Extract(context.Background(), bytes.NewReader(data), filepath.Join(base, "missing", "dest"), Limits{})
	wantCode(t, err, errdefs.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("message: %v", err)
	}
	file := writeFile(t, filepath.Join(base, "file"), []byte("x"))
	_, err = Extract(context.Background(), bytes.NewReader(data), file, Limits{})
	wantCode(t, err, errdefs.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "is a file") {
		t.Errorf("message: %v", err)
	}
}

func TestExtractBadStreams(t *testing.T) {
	dest := t.TempDir()
	raw := buildTar(t, []tent{{name: "a", body: strings.Repeat("x", 2000)}})
	for name, data := range map[string][]byte{
		"truncated":             raw[:1000],
		"not tar":               []byte(strings.Repeat("hello ", 200)),
		"bad gzip":              append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{7}, 100)...),
		"file then file as dir": buildTar(t, []tent{{name: "x", body: "x"}, {name: "x/y", body: "y"}}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Extract(context.Background(), bytes.NewReader(data), dest, Limits{})
			wantCode(t, err, CodeBadArchive)
		})
	}
	// Zero bytes is not a tar archive (an empty one is 1 KiB of zeros).
	_, err := Extract(context.Background(), bytes.NewReader(nil), dest, Limits{})
	wantCode(t, err, CodeBadArchive)
	st, err := Extract(context.Background(), bytes.NewReader(make([]byte, 1024)), dest, Limits{})
	if err != nil || st.Entries != 0 {
		t.Errorf("empty archive: %+v, %v", st, err)
	}
}

func TestExtractLimits(t *testing.T) {
	dest := t.TempDir()
	_, err := Extract(context.Background(), bytes.NewReader(buildTar(t, []tent{{name: "huge", size: 1 << 40}})), dest, Limits{MaxBytes: 1 << 20})
	wantCode(t, err, CodeTooLarge)
	if _, err := os.Lstat(filepath.Join(dest, "huge")); err == nil {
		t.Error("the oversized file was created")
	}

	var ents []tent
	for i := range 6 {
		ents = append(ents, tent{name: "f" + string(rune('a'+i)), body: "x"})
	}
	_, err = Extract(context.Background(), bytes.NewReader(buildTar(t, ents)), t.TempDir(), Limits{MaxEntries: 5})
	wantCode(t, err, CodeTooLarge)

	bomb := gzipBomb(t)
	dest = t.TempDir()
	_, err = Extract(context.Background(), bytes.NewReader(bomb), dest, Limits{MaxBytes: 10 << 20})
	wantCode(t, err, CodeTooLarge)
	if snap := snapshot(t, dest); len(snap) != 0 {
		t.Errorf("bomb left %v", snap)
	}
}

// cancelReader cancels its context after n bytes, then keeps serving data.
type cancelReader struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestExtractCanceled(t *testing.T) {
	data := buildTar(t, []tent{{name: "a", body: "a"}, {name: "big", body: strings.Repeat("x", 8<<20)}, {name: "z", body: "z"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dest := t.TempDir()
	_, err := Extract(ctx, &cancelReader{r: bytes.NewReader(data), n: 1 << 20, cancel: cancel}, dest, Limits{})
	wantCode(t, err, errdefs.CodeCanceled)
	if _, err := os.Lstat(filepath.Join(dest, "z")); err == nil {
		t.Error("kept extracting after cancellation")
	}

	_, err = Extract(ctx, bytes.NewReader(data), t.TempDir(), Limits{})
	wantCode(t, err, errdefs.CodeCanceled)
}

// A full host disk is no_space, with a hint, not internal.
func TestExtractNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	dest := t.TempDir()
	if err := syscall.Mount("tmpfs", dest, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dest, syscall.MNT_DETACH) })
	in := bytes.NewReader(buildTar(t, []tent{{name: "big", typ: tar.TypeReg, mode: 0o644, body: strings.Repeat("x", 1<<20)}}))
	_, err := Extract(context.Background(), in, dest, Limits{})
	if errdefs.CodeOf(err) != errdefs.CodeNoSpace || !strings.Contains(err.Error(), "free space") {
		t.Fatalf("extract onto a full disk: %v", err)
	}
}
