//go:build linux

package agent

import (
	"cmp"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// maxTrailer bounds what may follow the end of the tar archive (tar pads its
// output to a block size, usually 10 KiB) before FrameDataEnd.
const maxTrailer = 1 << 20

// errStopped tells the receiver that the call is over.
var errStopped = errors.New("archive call finished")

// putArchive extracts the tar stream the host sends in FrameData frames into
// the directory req.Path under the workspace, creating it when missing, and
// removes the entries req.Remove names. It is all or nothing, also across a
// crash: the archive is staged outside the workspace and moved into place
// (and the removed entries out of it) only once all of it is on disk
// (stage.go).
// Puts run one at a time, so that concurrent writers of one path are
// serialized (the last one wins).
func (s *server) putArchive(stream net.Conn, fw *frameWriter, req *agentproto.ArchiveRequest) error {
	rel, err := s.workspaceRel(req)
	if err != nil {
		return err
	}
	putMu.Lock()
	defer putMu.Unlock()
	ws, err := s.openWorkspace()
	if err != nil {
		return err
	}
	defer ws.Close()
	res := newReserve(s.stagingRoot())
	defer res.restore() // after the staging directory went (deferred below)
	var st *staging
	err = res.retry(func() (err error) {
		st, err = newStaging(s.stagingRoot())
		return err
	})
	if err != nil {
		return s.fsError("the staging directory "+s.stagingRoot(), err)
	}
	keep := false // stopped by a test hook: the staging stays for recovery
	defer func() {
		if keep {
			st.close()
			st.root.Close()
			return
		}
		st.discard()
	}()
	x := newExtractor(st, archiveLimit(req))
	defer x.close()
	if err = x.openDest(ws, req.Path, rel); err != nil {
		return err
	}
	if err = x.remove(req.Remove); err != nil {
		return err
	}

	pr, pw := io.Pipe()
	rc := &receiver{stream: stream, pw: pw, stopping: make(chan struct{}), done: make(chan struct{})}
	go rc.run()
	defer rc.stop(pr) // also on a panic: the receiver must not outlive the call

	xerr := x.extract(pr)
	if xerr == nil {
		xerr = drainTrailer(pr)
	}
	// The host's side of the story first: a cancel or a protocol error
	// explains whatever the extractor ran into.
	rerr := rc.stop(pr)
	if err = cmp.Or(rerr, xerr); err != nil {
		return err
	}
	if err = res.retry(func() error { return st.commit(&x.plan) }); err != nil {
		keep = errors.Is(err, errCrashed)
		return stageError(err)
	}
	// A step done before running out of space is skipped the second time.
	if err = res.retry(func() error { return applyPlan(ws, st.files, &x.plan) }); err != nil {
		if keep = errors.Is(err, errCrashed); keep {
			return err
		}
		st.abort(ws, &x.plan)
		return stageError(err)
	}
	// Flush before the commit directory goes: its removal then cannot
	// reach the disk without the renames.
	if werr := fw.settle(); werr != nil {
		return werr
	}
	// The staging directory goes after the answer (deferred): that takes a
	// few ms under emulation, and the next put waits for it (putMu).
	return fw.json(agentproto.FrameResult, x.res)
}

// putMu serializes put_archive calls in the agent (every session).
var putMu sync.Mutex

// stageError maps a failure to commit or place the staged archive.
func stageError(err error) error {
	if errors.Is(err, errCrashed) {
		return err
	}
	if isNoSpace(err) {
		return noSpace("placing the transfer (nothing of it was kept)")
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return wireError(agentproto.ErrCodeInternal, "placing %s: %v (nothing of the transfer was kept)", pe.Path, pe.Err)
	}
	return wireError(agentproto.ErrCodeInternal, "placing the transfer: %v (nothing of it was kept)", err)
}

// openWorkspace opens the workspace root, creating it when missing.
func (s *server) openWorkspace() (*os.Root, error) {
	root := s.workspaceRoot()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, s.fsError(root, err)
	}
	ws, err := os.OpenRoot(root)
	if err != nil {
		return nil, s.fsError(root, err)
	}
	return ws, nil
}

// drainTrailer reads what follows the end of the archive up to FrameDataEnd.
func drainTrailer(pr *io.PipeReader) error {
	n, err := io.Copy(io.Discard, io.LimitReader(pr, maxTrailer+1))
	if err != nil {
		return readErr(err)
	}
	if n > maxTrailer {
		return badArchive("more than %d bytes follow the end of the archive", maxTrailer)
	}
	return nil
}

// receiver feeds the FrameData payloads of the stream into a pipe read by
// the extractor, until FrameDataEnd. The host closing the stream before that
// cancels the call; any other frame is a protocol error.
type receiver struct {
	stream   net.Conn
	pw       *io.PipeWriter
	stopping chan struct{}
	done     chan struct{}
	once     sync.Once
	err      error // errCanceled, a wire error, or nil; read after done
}

func (r *receiver) run() {
	defer close(r.done)
	defer func() {
		if p := recover(); p != nil {
			log.Printf("panic in archive receiver: %v\n%s", p, debug.Stack())
			r.fail(wireError(agentproto.ErrCodeInternal, "panic: %v", p))
		}
	}()
	for {
		kind, payload, err := agentproto.ReadFrame(r.stream)
		if err != nil {
			select {
			case <-r.stopping:
				return // the read deadline stop set
			default:
			}
			if errors.Is(err, agentproto.ErrFrameTooLarge) {
				r.fail(wireError(agentproto.ErrCodeBadRequest, "archive frame: %v", err))
				return
			}
			r.fail(errCanceled)
			return
		}
		switch kind {
		case agentproto.FrameData:
			if _, err := r.pw.Write(payload); err != nil {
				return // the extractor is done; stop takes it from here
			}
		case agentproto.FrameDataEnd:
			r.pw.Close()
			return
		default:
			r.fail(wireError(agentproto.ErrCodeBadRequest, "unexpected frame kind %d in an archive stream", kind))
			return
		}
	}
}

func (r *receiver) fail(err error) {
	r.err = err
	r.pw.CloseWithError(err)
}

// stop ends the receiver (unblocking its pipe write and its stream read) and
// returns how it ended.
func (r *receiver) stop(pr *io.PipeReader) error {
	r.once.Do(func() {
		pr.CloseWithError(errStopped)
		close(r.stopping)
		_ = r.stream.SetReadDeadline(time.Now())
		<-r.done
	})
	return r.err
}
