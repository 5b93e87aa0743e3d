//go:build linux

package agent

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// getArchive streams a tar of req.Path (a file or a directory tree under the
// workspace) as FrameData frames, then the result.
func (s *server) getArchive(stream net.Conn, fw *frameWriter, req *agentproto.ArchiveRequest) error {
	rel, err := s.workspaceRel(req)
	if err != nil {
		return err
	}
	ws, err := os.OpenRoot(s.workspaceRoot())
	if err != nil {
		return s.fsError(req.Path, err)
	}
	defer ws.Close()
	// Stat follows a final symlink, inside the root only.
	fi, err := ws.Stat(rel)
	if err != nil {
		return s.fsError(req.Path, err)
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return wireError(agentproto.ErrCodeBadRequest, "%s is neither a regular file nor a directory", req.Path)
	}

	w := watchCancel(stream, fw)
	defer w.close()
	bw := bufio.NewWriterSize(dataFrames{fw}, dataChunk)
	p := &packer{tw: tar.NewWriter(bw), limit: archiveLimit(req), canceled: w.canceled, links: map[fileID]string{}}
	if fi.IsDir() {
		err = p.dir(ws, rel)
	} else {
		err = p.file(ws, rel, filepath.Base(rel), fi)
	}
	if err == nil {
		err = p.tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if w.canceled() {
		return errCanceled
	}
	if err != nil {
		return err
	}
	return fw.json(agentproto.FrameResult, p.res)
}

// packer writes tar entries; names are relative to the packed directory.
type packer struct {
	tw       *tar.Writer
	limit    int64 // file content bytes at most
	res      agentproto.ArchiveResult
	canceled func() bool
	links    map[fileID]string // first name packed of each file with several links
}

// fileID identifies an inode, to pack its further names as hard links.
type fileID struct{ dev, ino uint64 }

// dir packs the tree under rel: directories, regular files (a file's second
// and later names as hard links to its first) and symlinks (not followed).
// Special files are left out and listed in the result; whatever vanishes
// while the walk runs is skipped.
func (p *packer) dir(ws *os.Root, rel string) error {
	src, err := ws.OpenRoot(rel)
	if err != nil {
		return wireError(agentproto.ErrCodeInternal, "opening %s: %v", rel, err)
	}
	defer src.Close()
	return fs.WalkDir(src.FS(), ".", func(name string, _ fs.DirEntry, err error) error {
		if p.canceled() {
			return errCanceled
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && name != "." {
				return nil
			}
			return walkErr(name, err)
		}
		if name == "." {
			return nil
		}
		fi, err := src.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return walkErr(name, err)
		}
		switch {
		case fi.IsDir():
			return p.header(tarHeader(name+"/", tar.TypeDir, fi))
		case fi.Mode().IsRegular():
			if target, ok := p.linked(fi); ok {
				return p.header(hardLinkHeader(name, target, fi))
			}
			before := p.res.Entries
			if err := p.file(src, name, name, fi); err != nil {
				return err
			}
			if p.res.Entries > before { // packed, not vanished
				p.remember(name, fi)
			}
			return nil
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := src.Readlink(name)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return walkErr(name, err)
			}
			h := tarHeader(name, tar.TypeSymlink, fi)
			h.Linkname = target
			return p.header(h)
		}
		p.skip(name, fi.Mode())
		return nil
	})
}

// linked returns the name under which the file fi was packed already.
func (p *packer) linked(fi fs.FileInfo) (string, bool) {
	id, ok := multiLinked(fi)
	if !ok {
		return "", false
	}
	target, ok := p.links[id]
	return target, ok
}

// remember records name as the packed name of a file with several links.
func (p *packer) remember(name string, fi fs.FileInfo) {
	if id, ok := multiLinked(fi); ok {
		p.links[id] = name
	}
}

func multiLinked(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink < 2 {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

func hardLinkHeader(name, target string, fi fs.FileInfo) *tar.Header {
	h := tarHeader(name, tar.TypeLink, fi)
	h.Linkname = target
	return h
}

// skip lists a special file the tar cannot (sockets) or should not (fifos,
// devices: never made on the host) carry.
func (p *packer) skip(name string, m fs.FileMode) {
	kind := agentproto.KindFifo
	switch {
	case m&fs.ModeSocket != 0:
		kind = agentproto.KindSocket
	case m&fs.ModeCharDevice != 0:
		kind = agentproto.KindCharDevice
	case m&fs.ModeDevice != 0:
		kind = agentproto.KindBlockDevice
	case m&fs.ModeNamedPipe == 0:
		return // nothing else exists on Linux
	}
	p.res.SkippedCount++
	if len(p.res.Skipped) < agentproto.MaxSkippedListed {
		p.res.Skipped = append(p.res.Skipped, agentproto.SkippedEntry{Path: name, Kind: kind})
	}
}

// file packs the regular file at path (in root) as name. A file that grew
// since its stat is cut at the stat size, one that shrank is padded with
// zeros: the tar stays well formed.
func (p *packer) file(root *os.Root, path, name string, fi fs.FileInfo) error {
	size := fi.Size()
	if size > p.limit-p.res.Bytes {
		return wireError(agentproto.ErrCodeTooLarge, "%s takes the archive's file content over the limit of %d bytes", path, p.limit)
	}
	f, err := root.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return walkErr(path, err)
	}
	defer f.Close()
	h := tarHeader(name, tar.TypeReg, fi)
	h.Size = size
	if err := p.header(h); err != nil {
		return err
	}
	src := &sourceReader{r: f}
	n, err := io.CopyN(p.tw, src, size)
	if src.err != nil {
		return walkErr(path, src.err)
	}
	if err == io.EOF {
		_, err = io.CopyN(p.tw, zeros{}, size-n)
	}
	if err != nil {
		return err
	}
	p.res.Bytes += size
	return nil
}

func (p *packer) header(h *tar.Header) error {
	if err := p.tw.WriteHeader(h); err != nil {
		return err
	}
	p.res.Entries++
	return nil
}

// tarHeader describes fi. Times are cut to seconds so that ordinary entries
// need no PAX records; long names and huge files still get them.
func tarHeader(name string, flag byte, fi fs.FileInfo) *tar.Header {
	m := fi.Mode()
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	h := &tar.Header{Typeflag: flag, Name: name, Mode: mode, ModTime: fi.ModTime().Truncate(time.Second), Format: tar.FormatPAX}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
	}
	return h
}

func walkErr(name string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return wireError(agentproto.ErrCodeInternal, "packing %q: %v", name, err)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// dataFrames writes FrameData frames of at most dataChunk bytes.
type dataFrames struct{ fw *frameWriter }

func (d dataFrames) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), dataChunk)]
		if err := d.fw.frame(agentproto.FrameData, chunk); err != nil {
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}
