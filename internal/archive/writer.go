package archive

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Tar mode bits (archive/tar keeps them in Header.Mode as in the format).
const (
	permBits   = 0o777
	stickyBits = 0o1000
)

// tarOut writes the normalized stream shared by Seed and PackFiles.
type tarOut struct {
	tw    *tar.Writer
	w     *errWriter
	b     *budget
	st    *Stats
	files map[string]bool   // regular files already written, for hard links
	links map[fileID]string // first name written of each host file with several links
}

// fileID identifies a host inode.
type fileID struct{ dev, ino uint64 }

// linked returns the name under which the host file fi was written already.
func (o *tarOut) linked(fi os.FileInfo) (string, bool) {
	id, ok := multiLinked(fi)
	if !ok {
		return "", false
	}
	name, ok := o.links[id]
	return name, ok && o.files[name]
}

// remember records name as the written name of a file with several links.
func (o *tarOut) remember(name string, fi os.FileInfo) {
	if id, ok := multiLinked(fi); ok {
		o.links[id] = name
	}
}

func multiLinked(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink < 2 {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

func newTarOut(w io.Writer, b *budget, st *Stats) *tarOut {
	ew := &errWriter{w: w}
	return &tarOut{tw: tar.NewWriter(ew), w: ew, b: b, st: st, files: map[string]bool{}, links: map[fileID]string{}}
}

// errWriter remembers the destination's error, to tell it from read errors.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

func (o *tarOut) writeErr(err error) error {
	if typed(err) {
		return err
	}
	if errdefs.IsNoSpace(err) {
		return errdefs.HostNoSpace(err, "the tar stream")
	}
	return internal(err, "writing the tar stream failed; check that its destination (disk or guest) is still there")
}

func (o *tarOut) header(h *tar.Header) error {
	if err := o.b.entry(); err != nil {
		return err
	}
	// Zero Uid/Gid/Uname/Gname; an unset Format rounds ModTime to seconds.
	h.ModTime = h.ModTime.Truncate(time.Second)
	if err := o.tw.WriteHeader(h); err != nil {
		if o.w.err != nil {
			return o.writeErr(o.w.err)
		}
		return internal(err, "cannot write a tar header for %q", h.Name)
	}
	o.st.Entries++
	if h.Typeflag == tar.TypeReg {
		o.files[h.Name] = true
	} else {
		delete(o.files, h.Name)
	}
	return nil
}

func (o *tarOut) dir(name string, mode int64, mtime time.Time) error {
	return o.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode & (permBits | stickyBits), ModTime: mtime})
}

func (o *tarOut) symlink(name, target string, mtime time.Time) error {
	return o.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: permBits, ModTime: mtime})
}

// hardlink writes a link to a regular file written earlier in this stream.
func (o *tarOut) hardlink(name, target string, mode int64, mtime time.Time) error {
	if !o.files[target] {
		return badArchive("hard link %q points to %q, which is not a regular file earlier in the archive; recreate the archive without it (or with the target first)", name, target)
	}
	return o.header(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: mode & permBits, ModTime: mtime})
}

// file writes a regular file of the given size from r. readErr turns an
// error of r (or a short read, as io.ErrUnexpectedEOF) into a typed error.
func (o *tarOut) file(ctx context.Context, name string, mode int64, mtime time.Time, size int64, r io.Reader, readErr func(error) error) error {
	if err := o.b.declare(name, size); err != nil {
		return err
	}
	if err := o.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: mode & permBits, ModTime: mtime}); err != nil {
		return err
	}
	m := o.b.content(ctx, r)
	n, err := io.Copy(o.tw, io.LimitReader(m, size))
	o.st.Bytes += n
	switch {
	case o.w.err != nil:
		return o.writeErr(o.w.err)
	case m.err != nil:
		return m.err
	case err != nil:
		return readErr(err)
	case n < size:
		return readErr(io.ErrUnexpectedEOF)
	}
	return nil
}

func (o *tarOut) close() error {
	if err := o.tw.Close(); err != nil {
		if o.w.err != nil {
			return o.writeErr(o.w.err)
		}
		return internal(err, "cannot finish the tar stream")
	}
	return nil
}

// fileMode converts an os.FileMode to tar mode bits (perm + sticky).
func fileMode(m os.FileMode) int64 {
	out := int64(m.Perm())
	if m&os.ModeSticky != 0 {
		out |= stickyBits
	}
	return out
}

// hostReadErr is the readErr for files read from the host.
func hostReadErr(name string) func(error) error {
	return func(err error) error {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return invalid("%q shrank while it was being packed; retry when nothing is writing to it", name)
		}
		return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"cannot read %q; fix its permissions or leave it out", name)
	}
}

func (o *tarOut) skip(name, reason string) {
	o.st.Skipped = append(o.st.Skipped, Skipped{Path: name, Reason: reason})
}
