package archive

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Extract writes the tar (or gzip-compressed tar) stream r, which comes from
// an untrusted guest, under dest, an existing directory. Every write goes
// through an os.Root on dest, so no entry, not even through a symlink made by
// an earlier entry, can touch anything outside dest.
//
// Absolute names and names with a ".." element fail with
// path_outside_workspace, as does any write that would leave dest through a
// symlink; device, fifo and other special entries fail with bad_archive.
// Regular files get the header's permission bits & 0777 (never setuid);
// directories get them | 0700 so that extraction and later cleanup can work;
// symlinks are created as symlinks, whatever they point to; hard links must
// point to a regular file extracted earlier by this call. Existing files are
// replaced (a symlink is replaced, not written through); an existing empty
// directory may be replaced by a file. Files get the calling user as owner.
//
// On error, what was extracted so far stays under dest: the caller should
// extract into a fresh temporary directory and rename it into place on
// success.
func Extract(ctx context.Context, r io.Reader, dest string, lim Limits) (Stats, error) {
	var st Stats
	if ctx.Err() != nil {
		return st, canceled(ctx)
	}
	fi, err := os.Stat(dest)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return st, invalid("destination %q does not exist (or its parent does not); create the directory first", dest)
	case err != nil:
		return st, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"cannot use destination %q; check its permissions", dest)
	case !fi.IsDir():
		return st, invalid("destination %q is a file, not a directory; pass a directory", dest)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return st, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"cannot open destination %q; check its permissions", dest)
	}
	defer root.Close()
	return ExtractTo(ctx, r, root, lim)
}

// ExtractTo is Extract into an opened directory.
func ExtractTo(ctx context.Context, r io.Reader, root *os.Root, lim Limits) (Stats, error) {
	var st Stats
	if ctx.Err() != nil {
		return st, canceled(ctx)
	}
	x := &extractor{ctx: ctx, root: root, b: newBudget(lim, "the export"), st: &st, files: map[string]bool{}}
	return st, x.run(r)
}

type dirTime struct {
	name  string
	mtime time.Time
}

type extractor struct {
	ctx   context.Context
	root  *os.Root
	b     *budget
	st    *Stats
	files map[string]bool // regular files written by this call
	dirs  []dirTime       // directory mtimes, set last
}

func (x *extractor) run(r io.Reader) error {
	in, err := openTar(x.ctx, r, x.b)
	if err != nil {
		if errors.Is(err, errNotTar) {
			return badArchive("the export stream is not a tar archive; the guest sent something else")
		}
		return err
	}
	tr := tar.NewReader(in.r)
	for {
		if x.ctx.Err() != nil {
			return canceled(x.ctx)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return inputErr(in.m, err, "the export stream")
		}
		if err := x.entry(tr, h, in.m); err != nil {
			return err
		}
	}
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if fi, err := x.root.Lstat(d.name); err != nil || !fi.IsDir() {
			continue // replaced by a later entry
		}
		if err := x.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return x.fsErr(d.name, err)
		}
	}
	return nil
}

func (x *extractor) entry(tr *tar.Reader, h *tar.Header, stream *meter) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	if err := checkType(h, name); err != nil {
		return err
	}
	if name == "" {
		return nil // dest itself
	}
	if err := x.b.entry(); err != nil {
		return err
	}
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			if !isEscape(err) && (errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist)) {
				return badArchive("entry %q needs %q to be a directory, but it is not; the export stream is invalid", h.Name, dir)
			}
			return x.fsErr(name, err)
		}
	}
	if h.Typeflag == tar.TypeDir {
		err = x.dir(name, h)
	} else {
		err = x.nonDir(tr, name, h, stream)
	}
	if err != nil {
		return err
	}
	x.st.Entries++
	return nil
}

func (x *extractor) dir(name string, h *tar.Header) error {
	perm := os.FileMode(h.Mode&permBits) | 0o700
	fi, err := x.root.Lstat(name)
	if err == nil && !fi.IsDir() {
		if err := x.root.Remove(name); err != nil {
			return x.fsErr(name, err)
		}
	}
	if err := x.root.Mkdir(name, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return x.fsErr(name, err)
	}
	if err := x.root.Chmod(name, perm); err != nil {
		return x.fsErr(name, err)
	}
	delete(x.files, name)
	x.dirs = append(x.dirs, dirTime{name, h.ModTime})
	return nil
}

func (x *extractor) nonDir(tr *tar.Reader, name string, h *tar.Header, stream *meter) error {
	var target string
	if h.Typeflag == tar.TypeLink {
		var err error
		if target, err = cleanName(h.Linkname); err != nil {
			return err
		}
		if !x.files[target] {
			return badArchive("hard link %q points to %q, which is not a file extracted earlier; the export stream is invalid", h.Name, h.Linkname)
		}
	}
	// Replace whatever is there; never write through an existing symlink.
	if fi, err := x.root.Lstat(name); err == nil {
		if err := x.root.Remove(name); err != nil {
			if fi.IsDir() {
				return badArchive("entry %q is not a directory but a non-empty directory of that name exists; export into an empty directory", h.Name)
			}
			return x.fsErr(name, err)
		}
	}
	delete(x.files, name)
	switch h.Typeflag {
	case tar.TypeSymlink:
		if err := x.root.Symlink(h.Linkname, name); err != nil {
			return x.fsErr(name, err)
		}
		return nil
	case tar.TypeLink:
		if err := x.root.Link(target, name); err != nil {
			return x.fsErr(name, err)
		}
		return nil
	}
	return x.file(tr, name, h, stream)
}

func (x *extractor) file(tr *tar.Reader, name string, h *tar.Header, stream *meter) error {
	if err := x.b.declare(h.Name, h.Size); err != nil {
		return err
	}
	perm := os.FileMode(h.Mode & permBits)
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return x.fsErr(name, err)
	}
	m := x.b.content(x.ctx, tr)
	n, err := io.Copy(f, m)
	x.st.Bytes += n
	if err != nil {
		f.Close()
		switch {
		case m.err != nil:
			return m.err
		case m.readErr != nil:
			return inputErr(stream, m.readErr, "the export stream")
		}
		return x.fsErr(name, err)
	}
	if err := f.Chmod(perm); err != nil { // undo the umask
		f.Close()
		return x.fsErr(name, err)
	}
	if err := f.Close(); err != nil {
		return x.fsErr(name, err)
	}
	x.files[name] = true
	if err := x.root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
		return x.fsErr(name, err)
	}
	return nil
}

// fsErr types a failure of the host file system under dest.
func (x *extractor) fsErr(name string, err error) error {
	if isEscape(err) {
		return outside("entry %q would be written outside the destination through a symlink; the export is unsafe, nothing outside was touched", name)
	}
	if errdefs.IsNoSpace(err) {
		return errdefs.HostNoSpace(err, x.root.Name())
	}
	return errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal,
		"cannot write %q under %s; check free space and permissions", name, x.root.Name())
}
