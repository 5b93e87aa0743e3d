package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// tent is one entry of a test tar.
type tent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
	size int64 // declared size when > 0 and body is empty
}

func buildTar(t *testing.T, ents []tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: testTime,
			Uid: 1000, Gid: 1000, Uname: "alice", Gname: "staff"}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size > 0 {
				h.Size = e.size
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("header %q: %v", e.name, err)
		}
		if e.body != "" {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil && !strings.Contains(err.Error(), "missed writing") {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// hdr is the part of a tar header the tests look at.
type hdr struct {
	Name     string
	Type     byte
	Mode     int64
	Link     string
	Body     string
	ModTime  time.Time
	Uid, Gid int
	Uname    string
	Gname    string
}

func readTar(t *testing.T, data []byte) []hdr {
	t.Helper()
	var out []hdr
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading output tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hdr{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Link: h.Linkname, Body: string(body),
			ModTime: h.ModTime, Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname})
	}
}

func names(hs []hdr) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func find(hs []hdr, name string) (hdr, bool) {
	for _, h := range hs {
		if h.Name == name {
			return h, true
		}
	}
	return hdr{}, false
}

// snapshot describes a tree: type, permissions, content or link target, and
// mtime of regular files and links.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link -> " + target
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %o", fi.Mode()&(fs.ModePerm|fs.ModeSticky))
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			out[rel] = fmt.Sprintf("file %o %s %q", fi.Mode().Perm(), fi.ModTime().UTC().Format(time.RFC3339), b)
		default:
			out[rel] = "special " + fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s: want %q, got %q", k, want[k], got[k])
		}
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	if got := errdefs.CodeOf(err); got != code {
		t.Fatalf("want code %s, got %s: %v", code, got, err)
	}
}
