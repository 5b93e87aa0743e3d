//go:build linux

package agent

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/testutil"
)

// archiveAgent serves an agent whose workspace is a fresh temporary
// directory; outside is a sibling directory the archive ops must never touch.
func archiveAgent(t *testing.T) (sess *yamux.Session, root, outside string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return archiveAgentIn(t, dir)
}

// archiveAgentIn is archiveAgent in dir: workspace, outside and the staging
// root ("staging", on the same filesystem) are made there.
func archiveAgentIn(t *testing.T, dir string) (sess *yamux.Session, root, outside string) {
	t.Helper()
	root, outside = filepath.Join(dir, "workspace"), filepath.Join(dir, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	staging := filepath.Join(dir, "staging")
	t.Cleanup(func() { // every put cleans up after itself
		if left, _ := os.ReadDir(staging); len(left) > 0 {
			t.Errorf("left in the staging root: %v", left)
		}
	})
	return startAgent(t, Options{WorkspaceRoot: root, StagingRoot: staging}), root, outside
}

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

type entry = testutil.TarEntry

func tarFile(name, body string, mode int64) entry {
	return entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, ModTime: testTime}, Body: body}
}

func tarDir(name string, mode int64) entry {
	return entry{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testTime}}
}

func tarLink(flag byte, name, target string) entry {
	return entry{Header: tar.Header{Typeflag: flag, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func mkTar(t *testing.T, entries ...entry) []byte { return testutil.Tar(t, entries...).Bytes() }

func archiveReq(op, path string, maxBytes int64) agentproto.Request {
	return agentproto.Request{Op: op, Archive: &agentproto.ArchiveRequest{Path: path, MaxBytes: maxBytes}}
}

// sendData writes data as FrameData frames, then FrameDataEnd. It stops at
// the first write error (the call is over and the stream closed).
func sendData(stream io.Writer, data []byte) {
	for len(data) > 0 {
		n := min(len(data), dataChunk)
		if agentproto.WriteFrame(stream, agentproto.FrameData, data[:n]) != nil {
			return
		}
		data = data[n:]
	}
	_ = agentproto.WriteFrame(stream, agentproto.FrameDataEnd, nil)
}

// put runs a put_archive call, sending concurrently with reading the reply
// like the real host does.
func put(t *testing.T, sess *yamux.Session, path string, maxBytes int64, data []byte) reply {
	t.Helper()
	return putReq(t, sess, archiveReq(agentproto.OpPutArchive, path, maxBytes), data)
}

// putRemoving is put that also removes the entries named in remove.
func putRemoving(t *testing.T, sess *yamux.Session, path string, remove []string, data []byte) reply {
	t.Helper()
	req := archiveReq(agentproto.OpPutArchive, path, 0)
	req.Archive.Remove = remove
	return putReq(t, sess, req, data)
}

func putReq(t *testing.T, sess *yamux.Session, req agentproto.Request, data []byte) reply {
	t.Helper()
	stream := send(t, sess, req)
	defer stream.Close()
	go sendData(stream, data)
	return readReply(t, stream)
}

func putOK(t *testing.T, sess *yamux.Session, path string, data []byte) agentproto.ArchiveResult {
	t.Helper()
	r := put(t, sess, path, 0, data)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var res agentproto.ArchiveResult
	mustUnmarshal(t, r.result, &res)
	return res
}

// get runs a get_archive call and returns the tar bytes with the reply.
func get(t *testing.T, sess *yamux.Session, path string, maxBytes int64) ([]byte, reply) {
	t.Helper()
	stream := send(t, sess, archiveReq(agentproto.OpGetArchive, path, maxBytes))
	defer stream.Close()
	var data []byte
	for {
		kind, payload, err := agentproto.ReadFrame(stream)
		if err != nil {
			t.Fatalf("reading frame: %v", err)
		}
		switch kind {
		case agentproto.FrameData:
			if len(payload) > dataChunk {
				t.Fatalf("data frame of %d bytes", len(payload))
			}
			data = append(data, payload...)
		case agentproto.FrameResult:
			return data, reply{result: payload}
		case agentproto.FrameError:
			r := reply{err: new(agentproto.Error)}
			mustUnmarshal(t, payload, r.err)
			return data, r
		default:
			t.Fatalf("unexpected frame kind %d", kind)
		}
	}
}

// tarNames lists the members of a tar stream.
func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// emptyDir fails unless dir has no entries.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("%s holds %d entries, want none", dir, len(ents))
	}
}
