//go:build linux

package agent

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// makeTree writes a small tree with every kind of entry get handles.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub", "empty"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("alpha"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "big"), bytes.Repeat([]byte("0123456789"), 20_000), 0o600))
	must(os.Chmod(filepath.Join(dir, "sub"), 0o750))
	must(os.Symlink("../a.txt", filepath.Join(dir, "sub", "link")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "abs"))) // archived, not followed
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))    // skipped
	must(os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "sub", "hard")))
	for _, p := range []string{"a.txt", "run.sh", "sub/big", "sub/empty", "sub"} {
		must(os.Chtimes(filepath.Join(dir, p), testTime, testTime))
	}
}

// snapshot describes a tree: per path its mode, mtime, and content or target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + fi.ModTime().UTC().Format(time.RFC3339) + " " + string(b)
		case fi.IsDir():
			desc += " " + fi.ModTime().UTC().Format(time.RFC3339)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGetArchiveRoundTrip(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	src := filepath.Join(root, "src")
	makeTree(t, src)

	data, r := get(t, sess, src, 0)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var res agentproto.ArchiveResult
	mustUnmarshal(t, r.result, &res)
	names := tarNames(t, data)
	slices.Sort(names)
	want := []string{"a.txt", "abs", "run.sh", "sub/", "sub/big", "sub/empty/", "sub/hard", "sub/link"}
	if !slices.Equal(names, want) {
		t.Fatalf("names %q, want %q", names, want)
	}
	if res.Entries != len(want) || res.Bytes != 5+10+200_000 {
		t.Errorf("result %+v", res)
	}
	// The fifo is listed, the second name of a.txt is a hard link.
	if res.SkippedCount != 1 || !slices.Equal(res.Skipped, []agentproto.SkippedEntry{{Path: "fifo", Kind: agentproto.KindFifo}}) {
		t.Errorf("skipped %+v", res)
	}
	if h := tarHeaders(t, data)["sub/hard"]; h.Typeflag != tar.TypeLink || h.Linkname != "a.txt" {
		t.Errorf("sub/hard: %+v", h)
	}

	copyDir := filepath.Join(root, "copy")
	putOK(t, sess, copyDir, data)
	a, _ := os.Stat(filepath.Join(copyDir, "a.txt"))
	h, _ := os.Stat(filepath.Join(copyDir, "sub", "hard"))
	if !os.SameFile(a, h) {
		t.Error("the hard link came back as a copy")
	}
	got, orig := snapshot(t, copyDir), snapshot(t, src)
	delete(orig, "fifo")
	if len(got) != len(orig) {
		t.Errorf("copy has %d entries, the source %d", len(got), len(orig))
	}
	for p, d := range orig {
		if got[p] != d {
			t.Errorf("%s: copy %.80q, source %.80q", p, got[p], d)
		}
	}

	// A single file is archived under its base name.
	data, r = get(t, sess, filepath.Join(src, "a.txt"), 0)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if names := tarNames(t, data); !slices.Equal(names, []string{"a.txt"}) {
		t.Fatalf("names %q", names)
	}
	putOK(t, sess, filepath.Join(root, "one"), data)
	if b, _ := os.ReadFile(filepath.Join(root, "one", "a.txt")); string(b) != "alpha" {
		t.Errorf("single file: %q", b)
	}

	// The whole workspace: names are relative to it.
	data, r = get(t, sess, root+"/", 0)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if names := tarNames(t, data); !slices.Contains(names, "src/a.txt") || !slices.Contains(names, "one/a.txt") {
		t.Errorf("names %q", names)
	}
}

func TestGetArchiveRefuses(t *testing.T) {
	sess, root, outside := archiveAgent(t)
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"out": outside, "outfile": filepath.Join(outside, "secret"), "rel": "../outside"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "ten"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		max  int64
		code string
	}{
		{root + "/out", 0, agentproto.ErrCodeOutside},
		{root + "/out/secret", 0, agentproto.ErrCodeOutside},
		{root + "/outfile", 0, agentproto.ErrCodeOutside},
		{root + "/rel/secret", 0, agentproto.ErrCodeOutside},
		{outside, 0, agentproto.ErrCodeOutside},
		{"/etc/passwd", 0, agentproto.ErrCodeOutside},
		{"ten", 0, agentproto.ErrCodeOutside},
		{root + "/../outside/secret", 0, agentproto.ErrCodeOutside},
		{root + "/missing", 0, agentproto.ErrCodeNotFound},
		{root + "/ten/x", 0, agentproto.ErrCodeNotFound},
		{root + "/fifo", 0, agentproto.ErrCodeBadRequest},
		{root + "/ten", 9, agentproto.ErrCodeTooLarge},
		{root, 9, agentproto.ErrCodeTooLarge},
	} {
		data, r := get(t, sess, tc.path, tc.max)
		if r.err == nil || r.err.Code != tc.code {
			t.Errorf("get %s (max %d): %+v, want %s", tc.path, tc.max, r.err, tc.code)
			continue
		}
		if len(data) > 0 && tc.code != agentproto.ErrCodeTooLarge {
			t.Errorf("get %s sent %d bytes before failing", tc.path, len(data))
		}
	}
	if _, r := get(t, sess, root+"/ten", 10); r.err != nil {
		t.Errorf("exactly at the limit: %v", r.err)
	}
}

// Closing the stream mid-transfer stops the agent, which keeps serving.
func TestGetArchiveCancel(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	if err := os.WriteFile(filepath.Join(root, "big"), make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	stream := send(t, sess, archiveReq(agentproto.OpGetArchive, root+"/big", 0))
	if kind, _, err := agentproto.ReadFrame(stream); err != nil || kind != agentproto.FrameData {
		t.Fatalf("first frame %d, %v", kind, err)
	}
	stream.Close()
	if r := call(t, sess, agentproto.Request{Op: agentproto.OpHello}); r.err != nil {
		t.Fatal(r.err)
	}
	// startAgent's cleanup fails the test if the call is still running.
}

func TestSync(t *testing.T) {
	sess := startAgent(t, Options{})
	r := call(t, sess, agentproto.Request{Op: agentproto.OpSync})
	if r.err != nil || string(r.result) != "{}" {
		t.Fatalf("%s %v", r.result, r.err)
	}
}

// tarHeaders indexes the headers of a tar stream by name.
func tarHeaders(t *testing.T, data []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}
