//go:build linux

package agent

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// extractor unpacks a tar stream into a directory opened as an os.Root, which
// refuses every path (symlinks included) that leads out of it. Allowed: regular
// files, directories, symlinks (pointing anywhere: nothing is written through
// one out of the root) and hard links to files extracted earlier. Existing
// files are replaced; an existing directory is only ever merged into.
type extractor struct {
	root  *os.Root
	undo  journal // what to revert if the archive fails part-way
	limit int64   // file content bytes at most
	res   agentproto.ArchiveResult
	files map[string]bool // regular files extracted so far: hard link targets
	dirs  []dirMeta       // mode and times are applied last
	dirAt map[string]int  // index in dirs
}

type dirMeta struct {
	name         string
	mode         fs.FileMode
	atime, mtime time.Time
}

func newExtractor(root *os.Root, limit int64) *extractor {
	return &extractor{root: root, undo: journal{root: root}, limit: limit, files: map[string]bool{}, dirAt: map[string]int{}}
}

func (x *extractor) extract(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// A non-local name is refused below with a precise error.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return readErr(err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	return x.finishDirs()
}

func (x *extractor) entry(r io.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // e.g. the commit id `git archive` records
	}
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." && hdr.Typeflag == tar.TypeDir {
		return nil // the destination itself ("./"): leave its mode alone
	}
	if name == "." {
		return badArchive("entry %q would replace the destination directory", hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(name, hdr, r)
	case tar.TypeDir:
		return x.dir(name, hdr)
	case tar.TypeSymlink:
		return x.symlink(name, hdr)
	case tar.TypeLink:
		return x.link(name, hdr)
	}
	return badArchive("entry %q is a %s: only regular files, directories, symlinks and hard links are allowed",
		hdr.Name, typeName(hdr.Typeflag))
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size > x.limit-x.res.Bytes {
		return wireError(agentproto.ErrCodeTooLarge, "entry %q takes the archive's file content over the limit of %d bytes", hdr.Name, x.limit)
	}
	if err := x.prepare(name, false); err != nil {
		return err
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return x.fail(name, err)
	}
	x.undo.created(name)
	src := &sourceReader{r: r}
	n, err := io.Copy(f, src)
	x.res.Bytes += n
	if err == nil {
		err = f.Chmod(headerMode(hdr))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if src.err != nil {
		return readErr(src.err)
	}
	if err == nil {
		err = x.root.Chtimes(name, accessTime(hdr), hdr.ModTime)
	}
	if err != nil {
		return x.fail(name, err)
	}
	x.files[name] = true
	x.res.Entries++
	return nil
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	if err := x.prepare(name, true); err != nil {
		return err
	}
	mode := headerMode(hdr)
	// Writable and searchable until finishDirs sets the final mode.
	switch err := x.root.Mkdir(name, mode.Perm()|0o700); {
	case err == nil:
		x.undo.created(name)
	case !errors.Is(err, fs.ErrExist):
		return x.fail(name, err)
	}
	meta := dirMeta{name: name, mode: mode, atime: accessTime(hdr), mtime: hdr.ModTime}
	if i, ok := x.dirAt[name]; ok {
		x.dirs[i] = meta
		return nil
	}
	x.dirAt[name] = len(x.dirs)
	x.dirs = append(x.dirs, meta)
	x.res.Entries++
	return nil
}

func (x *extractor) symlink(name string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return badArchive("symlink %q has an empty target", hdr.Name)
	}
	if err := x.prepare(name, false); err != nil {
		return err
	}
	if err := x.root.Symlink(hdr.Linkname, name); err != nil {
		return x.fail(name, err)
	}
	x.undo.created(name)
	x.res.Entries++
	return nil
}

func (x *extractor) link(name string, hdr *tar.Header) error {
	target, err := entryName(hdr.Linkname)
	if err != nil {
		return wireError(agentproto.ErrCodeOutside, "hard link %q points to %q, outside the destination", hdr.Name, hdr.Linkname)
	}
	if !x.files[target] {
		return badArchive("hard link %q points to %q, which is not a regular file earlier in the archive", hdr.Name, hdr.Linkname)
	}
	if target != name {
		if err := x.prepare(name, false); err != nil {
			return err
		}
		if err := x.root.Link(target, name); err != nil {
			return x.fail(name, err)
		}
		x.undo.created(name)
		x.files[name] = true
	}
	x.res.Entries++
	return nil
}

// prepare creates the parents of name and clears the way for the entry: a
// file or symlink already there is moved aside (never written through; put
// back if the archive fails), an existing directory is kept for a directory
// entry and refused otherwise.
func (x *extractor) prepare(name string, isDir bool) error {
	if err := x.undo.mkdirAll(filepath.Dir(name), 0o755); err != nil {
		return x.fail(name, err)
	}
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return x.fail(name, err)
	}
	if fi.IsDir() {
		if isDir {
			return nil
		}
		return badArchive("entry %q is not a directory but a directory exists at that path in the guest: remove it first", name)
	}
	if err := x.undo.moveAside(name); err != nil {
		return x.fail(name, err)
	}
	delete(x.files, name)
	return nil
}

// finishDirs sets directory modes and times, deepest (latest) first, once
// nothing more is written into them.
func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.root.Chmod(d.name, d.mode); err != nil {
			return x.fail(d.name, err)
		}
		if err := x.root.Chtimes(d.name, d.atime, d.mtime); err != nil {
			return x.fail(d.name, err)
		}
	}
	return nil
}

func (x *extractor) fail(name string, err error) error {
	switch {
	case isEscape(err):
		return wireError(agentproto.ErrCodeOutside, "entry %q leads outside the destination through a symlink", name)
	case errors.Is(err, syscall.ENOTDIR):
		return badArchive("entry %q: a parent of it in the guest is not a directory", name)
	case isNoSpace(err):
		return noSpace("extracting %q (nothing of this transfer was kept)", name)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return wireError(agentproto.ErrCodeInternal, "extracting %q: %v", name, err)
}

// entryName validates and cleans an archive name (or a hard link target).
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", badArchive("an entry has an empty name")
	}
	if strings.HasPrefix(raw, "/") {
		return "", wireError(agentproto.ErrCodeOutside, "entry %q has an absolute name", raw)
	}
	name := filepath.Clean(raw)
	if !filepath.IsLocal(name) {
		return "", wireError(agentproto.ErrCodeOutside, "entry %q leads outside the destination", raw)
	}
	return name, nil
}

// sourceReader remembers a failure of the archive stream itself, to tell it
// from a failure to write the file.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// readErr maps a failure to read the tar stream. Errors the receiver put into
// the pipe (cancel, protocol) pass through.
func readErr(err error) error {
	var werr *agentproto.Error
	if errors.As(err, &werr) || errors.Is(err, errCanceled) || errors.Is(err, errStopped) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badArchive("the archive is truncated")
	}
	return badArchive("reading the archive: %v", err)
}

func badArchive(format string, args ...any) *agentproto.Error {
	return wireError(agentproto.ErrCodeBadArchive, format, args...)
}

func headerMode(hdr *tar.Header) fs.FileMode {
	return hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

func typeName(flag byte) string {
	switch flag {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeCont:
		return "contiguous file"
	}
	return fmt.Sprintf("entry of type %q", flag)
}
