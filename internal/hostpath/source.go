package hostpath

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Source is a host input opened for reading: a directory or a regular file.
type Source struct {
	Path string   // absolute, as named (for messages and results)
	Dir  *os.Root // set for a directory: read everything through it
	File *os.File // set for a regular file
}

// Name is the source's path, "" for a nil source.
func (s *Source) Name() string {
	if s == nil {
		return ""
	}
	return s.Path
}

// Close releases the source.
func (s *Source) Close() error {
	if s.Dir != nil {
		return s.Dir.Close()
	}
	return s.File.Close()
}

// OpenSource opens a directory or regular file to read. Unconfined, a path
// that is a symlink is followed, once, here: what it pointed to when opened
// is what is read. Confined, symlinks are followed only while they stay
// inside the granted root.
func (a *Access) OpenSource(path string) (*Source, error) {
	if !a.Confined() {
		if path == "" {
			return nil, errdefs.InvalidArgument("path", "give a host path")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, errdefs.InvalidArgument("path", "%q: %v", path, err)
		}
		return a.openSource(abs,
			func(flag int) (*os.File, error) { return os.OpenFile(abs, flag, 0) },
			func() (*os.Root, error) { return os.OpenRoot(abs) })
	}
	r, rel, err := a.locate(path, false)
	if err != nil {
		return nil, err
	}
	return a.openSource(filepath.Join(r.Path, rel),
		func(flag int) (*os.File, error) { return r.dir.OpenFile(rel, flag, 0) },
		func() (*os.Root, error) { return r.dir.OpenRoot(rel) })
}

// openSource opens the path as a file first (O_NONBLOCK: a fifo must not
// hang the caller), then, for a directory, as a root that must be the very
// directory first opened.
func (a *Access) openSource(named string, openFile func(flag int) (*os.File, error), openDir func() (*os.Root, error)) (*Source, error) {
	f, err := openFile(os.O_RDONLY | syscall.O_NONBLOCK)
	if err != nil {
		return nil, a.openErr(err, named, false)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, a.openErr(err, named, false)
	}
	switch {
	case fi.Mode().IsRegular():
		return &Source{Path: named, File: f}, nil
	case !fi.IsDir():
		f.Close()
		return nil, errdefs.InvalidArgument("path", "%s is neither a directory nor a regular file", named)
	}
	f.Close()
	dir, err := openDir()
	if err != nil {
		return nil, a.openErr(err, named, false)
	}
	if now, err := dir.Stat("."); err != nil || !os.SameFile(fi, now) {
		dir.Close()
		return nil, errdefs.New(errdefs.ErrConflict, errdefs.CodeConflict, "host path %s was replaced while it was being opened; try again", named)
	}
	return &Source{Path: named, Dir: dir}, nil
}
