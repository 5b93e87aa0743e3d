package archive

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// packDir writes the tree under root in sorted order. Symlinks are written
// as links and never followed (every access goes through the os.Root);
// device nodes, sockets and fifos are skipped and listed; a file that cannot
// be read is an error. A file's second and later names in the tree are
// written as hard links to its first.
func packDir(ctx context.Context, root *os.Root, o *tarOut) error {
	return fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return canceled(ctx)
		}
		if err != nil {
			return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"cannot read %q in the seed directory; fix its permissions or remove it", name)
		}
		if name == "." {
			return nil
		}
		fi, err := d.Info() // lstat: never follows a symlink
		if err != nil {
			return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"cannot stat %q in the seed directory; fix its permissions or remove it", name)
		}
		return packEntry(ctx, root, name, fi, o, false)
	})
}

// packEntry writes one host entry found by Lstat. With skipUnreadable, a
// file that cannot be opened is listed in Stats.Skipped instead of failing.
func packEntry(ctx context.Context, root *os.Root, name string, fi fs.FileInfo, o *tarOut, skipUnreadable bool) error {
	mode := fi.Mode()
	switch {
	case mode.IsDir():
		return o.dir(name, fileMode(mode), fi.ModTime())
	case mode&fs.ModeSymlink != 0:
		target, err := root.Readlink(name)
		if err != nil {
			if skipUnreadable {
				o.skip(name, "unreadable symlink: "+err.Error())
				return nil
			}
			return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"cannot read the symlink %q; fix its permissions or remove it", name)
		}
		return o.symlink(name, target, fi.ModTime())
	case mode.IsRegular():
		if target, ok := o.linked(fi); ok {
			return o.hardlink(name, target, fileMode(mode), fi.ModTime())
		}
		// O_NONBLOCK: if the file was swapped for a fifo, do not hang on it.
		f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			var now fs.FileInfo
			if now, err = f.Stat(); err == nil && !os.SameFile(fi, now) {
				err = errors.New("it was replaced while being packed")
			}
			if err != nil {
				f.Close()
			}
		}
		if err != nil {
			if skipUnreadable {
				o.skip(name, "unreadable: "+err.Error())
				return nil
			}
			return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"cannot read %q; fix its permissions or remove it from the seed", name)
		}
		defer f.Close()
		if err := o.file(ctx, name, fileMode(mode), fi.ModTime(), fi.Size(), f, hostReadErr(name)); err != nil {
			return err
		}
		o.remember(name, fi)
		return nil
	default:
		o.skip(name, specialKind(mode))
		return nil
	}
}

func specialKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "fifo: special files are not packed"
	case m&fs.ModeSocket != 0:
		return "socket: special files are not packed"
	case m&fs.ModeDevice != 0:
		return "device node: special files are not packed"
	}
	return "special file: not packed"
}
