package wsdiff

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// tent is one tar entry of a test tree.
type tent struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func file(name, body string) tent { return tent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func exe(name, body string) tent  { return tent{name: name, typ: tar.TypeReg, mode: 0o755, body: body} }
func dir(name string) tent        { return tent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) tent {
	return tent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}

func tarOf(t *testing.T, ents ...tent) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// memFile is a workspace file of a test FileSource.
type memFile struct {
	content string
	mode    os.FileMode
}

type memFS map[string]memFile

func (m memFS) source(path string) ([]byte, os.FileMode, bool, error) {
	f, ok := m[path]
	if !ok {
		return nil, 0, false, nil
	}
	return []byte(f.content), f.mode, true, nil
}

// filesOf keeps the regular files of a test tree.
func filesOf(ents ...tent) memFS {
	m := memFS{}
	for _, e := range ents {
		if e.typ == tar.TypeReg {
			m[e.name] = memFile{e.body, os.FileMode(e.mode)}
		}
	}
	return m
}

// write applies a PatchResult to a copy of m.
func (m memFS) write(res *PatchResult) memFS {
	out := memFS{}
	for k, v := range m {
		out[k] = v
	}
	for _, f := range res.Files {
		if f.Delete {
			delete(out, f.Path)
			continue
		}
		out[f.Path] = memFile{string(f.Content), f.Mode}
	}
	return out
}

func wantCode(t *testing.T, err error, code string, class error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want code %s", code)
	}
	if got := errdefs.CodeOf(err); got != code {
		t.Fatalf("code %q, want %q (error: %v)", got, code, err)
	}
	if class != nil && !errors.Is(err, class) {
		t.Fatalf("error %v is not of class %v", err, class)
	}
}
