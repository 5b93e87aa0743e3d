//go:build linux

package agent

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

func TestPutArchiveExtracts(t *testing.T) {
	sess, root, outside := archiveAgent(t)
	// A sync push replaces what is there, and never writes through a symlink.
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "dest"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(root, "dest", "run.sh")); err != nil {
		t.Fatal(err)
	}
	data := mkTar(t,
		tarDir("./", 0o755),
		tarDir("d/", 0o750),
		tarFile("d/a.txt", "hello", 0o640),
		tarFile("run.sh", "#!/bin/sh\n", 0o755),
		tarFile("deep/er/x", "x", 0o600), // parents not in the archive
		tarLink(tar.TypeSymlink, "d/sym", "a.txt"),
		tarLink(tar.TypeSymlink, "abs", "/etc/passwd"), // may point anywhere
		tarLink(tar.TypeLink, "d/hard", "d/a.txt"),
	)
	res := putOK(t, sess, filepath.Join(root, "dest"), data)
	if res.Entries != 7 || res.Bytes != 5+10+1 {
		t.Errorf("result %+v", res)
	}
	dest := filepath.Join(root, "dest")
	for name, want := range map[string]struct {
		mode os.FileMode
		body string
	}{
		"d":         {os.ModeDir | 0o750, ""},
		"d/a.txt":   {0o640, "hello"},
		"run.sh":    {0o755, "#!/bin/sh\n"},
		"deep/er/x": {0o600, "x"},
	} {
		fi, err := os.Lstat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want.mode || !fi.ModTime().Equal(testTime) {
			t.Errorf("%s: mode %v mtime %v", name, fi.Mode(), fi.ModTime())
		}
		if !fi.IsDir() {
			if b, _ := os.ReadFile(filepath.Join(dest, name)); string(b) != want.body {
				t.Errorf("%s: %q", name, b)
			}
		}
	}
	if target, err := os.Readlink(filepath.Join(dest, "d/sym")); err != nil || target != "a.txt" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "abs")); err != nil || target != "/etc/passwd" {
		t.Errorf("symlink: %q %v", target, err)
	}
	a, _ := os.Stat(filepath.Join(dest, "d/a.txt"))
	h, _ := os.Stat(filepath.Join(dest, "d/hard"))
	if !os.SameFile(a, h) {
		t.Error("the hard link is a copy")
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Errorf("written through the old symlink: %q", b)
	}

	// Pushing again overwrites.
	putOK(t, sess, dest, mkTar(t, tarFile("d/a.txt", "v2", 0o644)))
	if b, _ := os.ReadFile(filepath.Join(dest, "d/a.txt")); string(b) != "v2" {
		t.Errorf("after the second push: %q", b)
	}
}

func TestPutArchiveCreatesDestAndAcceptsEmpty(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	res := putOK(t, sess, filepath.Join(root, "new", "dir"), nil)
	if res.Entries != 0 || res.Bytes != 0 {
		t.Errorf("result %+v", res)
	}
	if fi, err := os.Stat(filepath.Join(root, "new", "dir")); err != nil || !fi.IsDir() {
		t.Fatalf("dest not created: %v", err)
	}
	putOK(t, sess, root, mkTar(t, tarFile("top", "t", 0o644)))
	if _, err := os.Stat(filepath.Join(root, "top")); err != nil {
		t.Fatal(err)
	}
}

func TestPutArchiveRefusesHostileEntries(t *testing.T) {
	huge := func(t *testing.T) []byte { // a header that announces 1 TiB, no content
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Size: 1 << 40, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for name, tc := range map[string]struct {
		data    func(t *testing.T, outside string) []byte
		max     int64
		code    string
		mention string
	}{
		"dotdot": {func(t *testing.T, _ string) []byte {
			return mkTar(t, tarFile("ok", "", 0o644), tarFile("a/../../evil", "x", 0o644))
		}, 0, agentproto.ErrCodeOutside, "../evil"},
		"absolute": {func(t *testing.T, outside string) []byte {
			return mkTar(t, tarFile(outside+"/abs", "x", 0o644))
		}, 0, agentproto.ErrCodeOutside, "absolute"},
		"through symlink to /": {func(t *testing.T, _ string) []byte {
			return mkTar(t, tarLink(tar.TypeSymlink, "link", "/"), tarFile("link/etc/pyro-evil", "x", 0o644))
		}, 0, agentproto.ErrCodeOutside, "link/etc/pyro-evil"},
		"through symlink to outside": {func(t *testing.T, outside string) []byte {
			return mkTar(t, tarLink(tar.TypeSymlink, "link", outside), tarFile("link/x", "x", 0o644))
		}, 0, agentproto.ErrCodeOutside, "link/x"},
		"dir through symlink": {func(t *testing.T, outside string) []byte {
			return mkTar(t, tarLink(tar.TypeSymlink, "link", "../../outside"), tarDir("link/sub/", 0o755))
		}, 0, agentproto.ErrCodeOutside, "link/sub"},
		"hard link outside": {func(t *testing.T, outside string) []byte {
			return mkTar(t, tarLink(tar.TypeLink, "h", "../outside/victim"))
		}, 0, agentproto.ErrCodeOutside, "../outside/victim"},
		"hard link to unknown": {func(t *testing.T, _ string) []byte {
			return mkTar(t, tarLink(tar.TypeLink, "h", "nope"))
		}, 0, agentproto.ErrCodeBadArchive, "nope"},
		"char device": {func(t *testing.T, _ string) []byte {
			return mkTar(t, entry{Header: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3, Mode: 0o666}})
		}, 0, agentproto.ErrCodeBadArchive, `"null" is a character device`},
		"fifo": {func(t *testing.T, _ string) []byte {
			return mkTar(t, entry{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "p", Mode: 0o666}})
		}, 0, agentproto.ErrCodeBadArchive, "fifo"},
		"size bomb": {func(t *testing.T, _ string) []byte {
			return mkTar(t, tarFile("a", strings.Repeat("x", 600), 0o644), tarFile("b", strings.Repeat("x", 600), 0o644))
		}, 1000, agentproto.ErrCodeTooLarge, `"b"`},
		"announced size bomb": {func(t *testing.T, _ string) []byte { return huge(t) }, 0, agentproto.ErrCodeTooLarge, "bomb"},
		"not a tar": {func(t *testing.T, _ string) []byte {
			return bytes.Repeat([]byte("garbage!"), 100)
		}, 0, agentproto.ErrCodeBadArchive, ""},
		"truncated": {func(t *testing.T, _ string) []byte {
			return mkTar(t, tarFile("a", strings.Repeat("x", 5000), 0o644))[:2048]
		}, 0, agentproto.ErrCodeBadArchive, "truncated"},
	} {
		t.Run(name, func(t *testing.T) {
			sess, root, outside := archiveAgent(t)
			dest := filepath.Join(root, "dest")
			r := put(t, sess, dest, tc.max, tc.data(t, outside))
			wantError(t, r, tc.code)
			if !strings.Contains(r.err.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", r.err.Message, tc.mention)
			}
			emptyDir(t, outside)
			if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the failed put left its destination behind: %v", err)
			}
			if _, err := os.Lstat("/etc/pyro-evil"); err == nil {
				t.Fatal("wrote /etc/pyro-evil")
			}
			// The session is still good.
			if r := call(t, sess, agentproto.Request{Op: agentproto.OpHello}); r.err != nil {
				t.Fatal(r.err)
			}
		})
	}
}

func TestPutArchiveRefusesDest(t *testing.T) {
	sess, root, outside := archiveAgent(t)
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	data := mkTar(t, tarFile("x", "x", 0o644))
	for path, code := range map[string]string{
		outside:              agentproto.ErrCodeOutside,
		"/etc":               agentproto.ErrCodeOutside,
		"relative/path":      agentproto.ErrCodeOutside,
		root + "/../outside": agentproto.ErrCodeOutside,
		root + "/escape":     agentproto.ErrCodeOutside,
		root + "/escape/sub": agentproto.ErrCodeOutside,
		root + "/file":       agentproto.ErrCodeBadRequest,
		"":                   agentproto.ErrCodeBadRequest,
		root + "x":           agentproto.ErrCodeOutside, // a prefix, not a parent
	} {
		r := put(t, sess, path, 0, data)
		if r.err == nil || r.err.Code != code {
			t.Errorf("put to %q: %+v %s, want %s", path, r.err, r.result, code)
		}
	}
	emptyDir(t, outside)
	// A nil archive request is a bad request, not a panic.
	wantError(t, call(t, sess, agentproto.Request{Op: agentproto.OpPutArchive}), agentproto.ErrCodeBadRequest)
}

func TestPutArchiveRefusesOtherFrames(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	stream := send(t, sess, archiveReq(agentproto.OpPutArchive, root, 0))
	defer stream.Close()
	if err := agentproto.WriteFrame(stream, agentproto.FrameStdout, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	wantError(t, readReply(t, stream), agentproto.ErrCodeBadRequest)
}

// The host closing the stream before FrameDataEnd cancels the put; the agent
// answers nothing and keeps serving.
func TestPutArchiveCancel(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	stream := send(t, sess, archiveReq(agentproto.OpPutArchive, root, 0))
	data := mkTar(t, tarFile("big", strings.Repeat("x", 1<<20), 0o644))
	if err := agentproto.WriteFrame(stream, agentproto.FrameData, data[:300<<10]); err != nil {
		t.Fatal(err)
	}
	// Wait until the agent is into the file (in its staging directory),
	// then go away.
	deadline := time.Now().Add(5 * time.Second)
	staged, _ := filepath.Glob(filepath.Join(filepath.Dir(root), "staging", "put-*", "[0-9]*"))
	for {
		if len(staged) == 1 {
			if fi, err := os.Stat(staged[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		staged, _ = filepath.Glob(filepath.Join(filepath.Dir(root), "staging", "put-*", "[0-9]*"))
		if time.Now().After(deadline) {
			t.Fatal("the agent never started extracting")
		}
		time.Sleep(5 * time.Millisecond)
	}
	emptyDir(t, root) // nothing shows in the workspace mid-transfer
	stream.Close()
	if kind, payload, err := agentproto.ReadFrame(stream); err == nil {
		t.Fatalf("got frame %d %s after cancelling", kind, payload)
	}
	if r := call(t, sess, agentproto.Request{Op: agentproto.OpHello}); r.err != nil {
		t.Fatal(r.err)
	}
	emptyDir(t, root) // and archiveAgent's cleanup checks the staging root
	// startAgent's cleanup fails the test if the call is still running.
}

func TestPutArchiveRefusesTrailingJunk(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	data := append(mkTar(t, tarFile("a", "a", 0o644)), make([]byte, maxTrailer+4096)...)
	data = append(data, "junk"...)
	wantError(t, put(t, sess, root, 0, data), agentproto.ErrCodeBadArchive)
}

func TestPutArchiveKeepsSpecialModes(t *testing.T) {
	sess, root, _ := archiveAgent(t)
	putOK(t, sess, root, mkTar(t, tarFile("suid", "", 0o4755), tarDir("sticky/", 0o1777)))
	for name, want := range map[string]os.FileMode{"suid": 0o755 | os.ModeSetuid, "sticky": 0o777 | os.ModeDir | os.ModeSticky} {
		fi, err := os.Stat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}
