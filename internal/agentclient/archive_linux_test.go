//go:build linux

package agentclient

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agent"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// realAgent serves the real guest agent over a pipe, its workspace a
// temporary directory.
func realAgent(t *testing.T) (*Client, string) {
	t.Helper()
	root := t.TempDir()
	guest, host := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = agent.Serve(ctx, guest, agent.Options{WorkspaceRoot: root})
	}()
	c, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Error("the agent did not stop")
		}
	})
	return c, root
}

func testTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = string(b)
	}
}

// A put removes what it names in the same step; a removal the agent
// refuses is a typed error and changes nothing; a list over the bound is
// refused before anything is sent.
func TestArchivePutRemoves(t *testing.T) {
	c, root := realAgent(t)
	if _, err := c.PutArchive(t.Context(), root, nil, bytes.NewReader(testTar(t, map[string]string{"a": "a", "d/b": "b"}))); err != nil {
		t.Fatal(err)
	}
	_, err := c.PutArchive(t.Context(), root, []string{"a", "missing"}, bytes.NewReader(testTar(t, map[string]string{"c": "c"})))
	if errdefs.CodeOf(err) != CodeNotFound || !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("removing a missing file: %v", err)
	}
	_, err = c.PutArchive(t.Context(), root, []string{"../x"}, bytes.NewReader(testTar(t, nil)))
	if errdefs.CodeOf(err) != CodePathOutsideWorkspace {
		t.Errorf("removing outside: %v", err)
	}
	huge := make([]string, 5000)
	for i := range huge {
		huge[i] = strings.Repeat("n", 60)
	}
	if _, err = c.PutArchive(t.Context(), root, huge, bytes.NewReader(nil)); errdefs.CodeOf(err) != CodeTooLarge {
		t.Errorf("too many removals: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "c")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused put wrote c: %v", err)
	}
	if _, err := c.PutArchive(t.Context(), root, []string{"a", "d/b"}, bytes.NewReader(testTar(t, map[string]string{"c": "c"}))); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a": false, "d/b": false, "d": true, "c": true} {
		if _, err := os.Lstat(filepath.Join(root, name)); (err == nil) != want {
			t.Errorf("%s: %v, want present %v", name, err, want)
		}
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	c, root := realAgent(t)
	files := map[string]string{
		"a.txt":       "alpha",
		"sub/b.txt":   "beta",
		"sub/big.bin": strings.Repeat("0123456789abcdef", 50_000), // several frames
	}
	res, err := c.PutArchive(t.Context(), root+"/dst", nil, bytes.NewReader(testTar(t, files)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 3 || res.Bytes != int64(5+4+800_000) {
		t.Errorf("put result %+v", res)
	}
	var out bytes.Buffer
	res, err = c.GetArchive(t.Context(), root+"/dst", 0, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := untar(t, out.Bytes())
	files["sub/"] = ""
	if len(got) != len(files) {
		t.Errorf("got entries %v", slices.Sorted(maps.Keys(got)))
	}
	for n, body := range files {
		if got[n] != body {
			t.Errorf("%s: %d bytes, want %d", n, len(got[n]), len(body))
		}
	}
	if res.Entries != 4 || res.Bytes != int64(5+4+800_000) {
		t.Errorf("get result %+v", res)
	}
	if err := c.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// The agent refusing early must not leave PutArchive pushing an endless
// stream into a full window.
func TestPutArchiveReturnsOnEarlyRefusal(t *testing.T) {
	c, root := realAgent(t)
	var dev bytes.Buffer
	tw := tar.NewWriter(&dev)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	for _, tc := range []struct {
		dest   string
		stream io.Reader
		code   string
		hint   string
	}{
		{"/etc", endlessZeros{}, CodePathOutsideWorkspace, "paths must be relative to /workspace or absolute under it"},
		{root, io.MultiReader(bytes.NewReader(dev.Bytes()), endlessZeros{}), CodeBadArchive, "character device"},
		{root + "/x", io.MultiReader(bytes.NewReader(testTar(t, map[string]string{"f": "x"})[:1024]), endlessZeros{}), CodeBadArchive, ""},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := c.PutArchive(ctx, tc.dest, nil, tc.stream)
		cancel()
		if errdefs.CodeOf(err) != tc.code || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.hint) {
			t.Errorf("put to %s: %v, want %s", tc.dest, err, tc.code)
		}
	}
	if _, err := c.Hello(t.Context()); err != nil {
		t.Fatal(err)
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestPutArchiveSourceErrorCancels(t *testing.T) {
	c, root := realAgent(t)
	boom := errors.New("upload interrupted")
	data := testTar(t, map[string]string{"f": strings.Repeat("x", 300_000)})
	_, err := c.PutArchive(t.Context(), root, nil, &failingReader{bytes.NewReader(data[:200_000]), boom})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Hello(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestGetArchiveErrors(t *testing.T) {
	c, root := realAgent(t)
	if err := os.Symlink("/etc", filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "f"), make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  string
		max   int64
		code  string
		class error
	}{
		{root + "/missing", 0, CodeNotFound, errdefs.ErrNotFound},
		{root + "/etc/passwd", 0, CodePathOutsideWorkspace, errdefs.ErrInvalidArgument},
		{"/etc/passwd", 0, CodePathOutsideWorkspace, errdefs.ErrInvalidArgument},
		{root + "/f", 99, CodeTooLarge, errdefs.ErrInvalidArgument},
	} {
		_, err := c.GetArchive(t.Context(), tc.path, tc.max, io.Discard)
		if errdefs.CodeOf(err) != tc.code || !errors.Is(err, tc.class) {
			t.Errorf("get %s: %v, want %s", tc.path, err, tc.code)
		}
	}
}
