//go:build linux

package agent

import (
	"cmp"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// maxTrailer bounds what may follow the end of the tar archive (tar pads its
// output to a block size, usually 10 KiB) before FrameDataEnd.
const maxTrailer = 1 << 20

// errStopped tells the receiver that the call is over.
var errStopped = errors.New("archive call finished")

// putArchive extracts the tar stream the host sends in FrameData frames into
// the directory req.Path under the workspace, creating it when missing. Puts
// run one at a time, so that concurrent writers of one path are serialized
// (the last one wins) instead of tripping over each other's half-made
// entries, and each put is undone if it fails (see journal).
func (s *server) putArchive(stream net.Conn, fw *frameWriter, req *agentproto.ArchiveRequest) error {
	rel, err := s.workspaceRel(req)
	if err != nil {
		return err
	}
	s.puts.Lock()
	defer s.puts.Unlock()
	ws, err := s.openWorkspace()
	if err != nil {
		return err
	}
	defer ws.Close()
	made := journal{root: ws} // the destination's missing parents
	dest, err := openDest(&made, req.Path, rel)
	if err != nil {
		made.undo()
		return err
	}
	defer dest.Close()

	pr, pw := io.Pipe()
	rc := &receiver{stream: stream, pw: pw, stopping: make(chan struct{}), done: make(chan struct{})}
	go rc.run()
	defer rc.stop(pr) // also on a panic: the receiver must not outlive the call

	x := newExtractor(dest, archiveLimit(req))
	xerr := x.extract(pr)
	if xerr == nil {
		xerr = drainTrailer(pr)
	}
	// The host's side of the story first: a cancel or a protocol error
	// explains whatever the extractor ran into.
	rerr := rc.stop(pr)
	if err := cmp.Or(rerr, xerr); err != nil {
		x.undo.undo()
		made.undo()
		return err
	}
	x.undo.commit()
	return fw.json(agentproto.FrameResult, x.res)
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

// openDest creates the destination directory (through the workspace root, so
// a symlink cannot lead it elsewhere; each directory made is recorded in
// made) and opens it as a root.
func openDest(made *journal, path, rel string) (*os.Root, error) {
	if err := made.mkdirAll(rel, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return nil, wireError(agentproto.ErrCodeBadRequest, "%s is not a directory, or one of its parents is not", path)
		}
		return nil, destError(path, err)
	}
	dest, err := made.root.OpenRoot(rel)
	if err != nil {
		return nil, destError(path, err)
	}
	return dest, nil
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
