package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestPackFiles(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "d/e"), 0o750))
	must(os.WriteFile(filepath.Join(root, "README"), []byte("read me"), 0o644))
	must(os.WriteFile(filepath.Join(root, "d/e/x.go"), []byte("package e"), 0o600))
	must(os.WriteFile(filepath.Join(root, "untracked"), []byte("not listed"), 0o644))
	must(os.Symlink("README", filepath.Join(root, "link")))
	must(os.Symlink("does-not-exist", filepath.Join(root, "dangling")))
	must(os.Symlink("/etc", filepath.Join(root, "etc")))
	must(os.Mkdir(filepath.Join(root, "submodule"), 0o755))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))

	files := []string{"README", "./d/e/x.go", "link", "dangling", "missing.txt", "submodule", "fifo", "etc/passwd", "README"}
	var out bytes.Buffer
	st, err := PackFiles(context.Background(), openRoot(t, root), files, &out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	hs := readTar(t, out.Bytes())
	want := []string{"README", "d", "d/e", "d/e/x.go", "dangling", "link"}
	if !slices.Equal(names(hs), want) {
		t.Fatalf("entries %q, want %q", names(hs), want)
	}
	if h, _ := find(hs, "d/e"); h.Type != tar.TypeDir || h.Mode != 0o750 {
		t.Errorf("parent dir: %+v", h)
	}
	if h, _ := find(hs, "d/e/x.go"); h.Body != "package e" || h.Mode != 0o600 {
		t.Errorf("file: %+v", h)
	}
	// Git tracks symlinks as links, dangling or not: they are packed as links.
	if h, _ := find(hs, "dangling"); h.Type != tar.TypeSymlink || h.Link != "does-not-exist" {
		t.Errorf("dangling link: %+v", h)
	}
	if st.Entries != len(want) || st.Bytes != int64(len("read me")+len("package e")) {
		t.Errorf("stats %+v", st)
	}
	reasons := map[string]string{}
	for _, s := range st.Skipped {
		reasons[s.Path] = s.Reason
	}
	for path, word := range map[string]string{
		"missing.txt": "missing",
		"submodule":   "directory",
		"fifo":        "fifo",
		"etc/passwd":  "parent",
	} {
		if !strings.Contains(reasons[path], word) {
			t.Errorf("skipped %s: reason %q, want it to mention %q (all: %+v)", path, reasons[path], word, st.Skipped)
		}
	}
	if len(st.Skipped) != 4 {
		t.Errorf("skipped %+v, want 4 entries", st.Skipped)
	}
}

func TestPackFilesErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a"), []byte("aaaa"))
	for _, name := range []string{"../x", "/etc/passwd", "a/../../x"} {
		_, err := PackFiles(context.Background(), openRoot(t, root), []string{name}, &bytes.Buffer{}, Limits{})
		wantCode(t, err, CodePathOutsideWorkspace)
	}
	_, err := PackFiles(context.Background(), openRoot(t, root), []string{"a"}, &bytes.Buffer{}, Limits{MaxBytes: 3})
	wantCode(t, err, CodeTooLarge)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = PackFiles(ctx, openRoot(t, root), []string{"a"}, &bytes.Buffer{}, Limits{})
	wantCode(t, err, errdefs.CodeCanceled)

	_, err = PackFiles(context.Background(), openRoot(t, root), []string{"a"}, failWriter{}, Limits{})
	wantCode(t, err, errdefs.CodeInternal)
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestPackFilesUnreadableAsUser(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file; the fifo, directory and missing cases cover skipping")
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "secret"), []byte("x"))
	if err := os.Chmod(filepath.Join(root, "secret"), 0); err != nil {
		t.Fatal(err)
	}
	st, err := PackFiles(context.Background(), openRoot(t, root), []string{"secret"}, &bytes.Buffer{}, Limits{})
	if err != nil || len(st.Skipped) != 1 || !strings.Contains(st.Skipped[0].Reason, "unreadable") {
		t.Fatalf("stats %+v, err %v", st, err)
	}
	_, err = Seed(context.Background(), root, &bytes.Buffer{}, Limits{})
	wantCode(t, err, errdefs.CodeInvalidArgument) // a directory seed does not skip
}

func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
