package archive

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"

	"github.com/pyrovm/pyro/internal/errdefs"
)

const acceptedForms = "pass a directory, a .tar file or a .tar.gz/.tgz file"

// Seed turns a host seed source into a normalized tar stream written to w:
// a directory (packed recursively, in sorted order), a tar file, or a
// gzip-compressed tar file (recognised by its magic bytes, whatever its
// extension). It returns what went in.
//
// Tar input is checked rather than trusted: absolute names and names with a
// ".." element fail with path_outside_workspace; device, fifo and other
// special entries, hard links to anything but a regular file already in the
// archive, and corrupt tar or gzip data fail with bad_archive. Hard links are
// kept as hard links (their target is always earlier in the output).
func Seed(ctx context.Context, src string, w io.Writer, lim Limits) (Stats, error) {
	var st Stats
	if ctx.Err() != nil {
		return st, canceled(ctx)
	}
	fi, err := os.Stat(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return st, errdefs.Wrap(err, errdefs.ErrNotFound, CodeNotFound,
				"seed %q does not exist; %s", src, acceptedForms)
		}
		return st, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"cannot read seed %q; check its permissions", src)
	}
	switch {
	case fi.IsDir():
		root, err := os.OpenRoot(src)
		if err != nil {
			return st, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"cannot open the seed directory %q; check its permissions", src)
		}
		defer root.Close()
		return SeedDir(ctx, root, w, lim)
	case fi.Mode().IsRegular():
		f, err := os.Open(src)
		if err != nil {
			return st, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"cannot open seed %q; check its permissions", src)
		}
		defer f.Close()
		return SeedArchive(ctx, f, src, w, lim)
	}
	return st, invalid("seed %q is neither a directory nor a regular file; %s", src, acceptedForms)
}

// SeedDir packs the tree of an opened directory, as Seed does for a
// directory path.
func SeedDir(ctx context.Context, root *os.Root, w io.Writer, lim Limits) (Stats, error) {
	var st Stats
	o := newTarOut(w, newBudget(lim, "the seed"), &st)
	err := packDir(ctx, root, o)
	if err == nil {
		err = o.close()
	}
	return st, err
}

// SeedArchive normalizes a tar or tar.gz stream read from r, as Seed does
// for an archive path; name is how messages refer to it.
func SeedArchive(ctx context.Context, r io.Reader, name string, w io.Writer, lim Limits) (Stats, error) {
	var st Stats
	if ctx.Err() != nil {
		return st, canceled(ctx)
	}
	o := newTarOut(w, newBudget(lim, "the seed"), &st)
	err := seedStream(ctx, r, name, o)
	if err == nil {
		err = o.close()
	}
	return st, err
}

// seedStream normalizes a tar or tar.gz stream read from r.
func seedStream(ctx context.Context, r io.Reader, src string, o *tarOut) error {
	in, err := openTar(ctx, r, o.b)
	if err != nil {
		if errors.Is(err, errNotTar) {
			return invalid("seed %q is not a directory or a tar archive; %s", src, acceptedForms)
		}
		return err
	}
	tr := tar.NewReader(in.r)
	for {
		if ctx.Err() != nil {
			return canceled(ctx)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return inputErr(in.m, err, src)
		}
		if err := seedEntry(ctx, tr, h, o, in.m, src); err != nil {
			return err
		}
	}
	if in.gz {
		// Read the tar padding that follows the end marker so that the gzip
		// checksum gets verified; stop quietly after 1 MiB of trailing data.
		if _, err := io.Copy(io.Discard, io.LimitReader(in.r, 1<<20)); err != nil {
			return inputErr(in.m, err, src)
		}
	}
	return nil
}

func seedEntry(ctx context.Context, tr *tar.Reader, h *tar.Header, o *tarOut, stream *meter, src string) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX global header: metadata only
	}
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	if err := checkType(h, name); err != nil {
		return err
	}
	if name == "" { // the root itself ("./"): the workspace root exists already
		return nil
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return o.dir(name, h.Mode, h.ModTime)
	case tar.TypeSymlink:
		return o.symlink(name, h.Linkname, h.ModTime)
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil {
			return err
		}
		return o.hardlink(name, target, h.Mode, h.ModTime)
	default: // tar.TypeReg
		return o.file(ctx, name, h.Mode, h.ModTime, h.Size, tr, func(err error) error {
			return inputErr(stream, err, src)
		})
	}
}
