// Package flatten applies container image layers (tar streams, bottom layer
// first) onto a staging directory, the way a container runtime unpacks an
// image: whiteouts delete, opaque markers hide what lower layers put in a
// directory, later entries replace earlier ones.
//
// Layers are untrusted input. Every operation goes through an os.Root opened
// on the staging directory, every name is checked (no "..", no NUL), and
// parent directories are resolved here, chroot-style (an absolute symlink
// target starts at the tree's root, ".." stops there), so that the final
// os.Root call never has to follow a symlink at all. Nothing is ever
// written through a symlink or outside the tree; device nodes are not
// created on the host (the guest gets its own on devtmpfs).
//
// mutate.Extract from go-containerregistry flattens top-down and cannot
// place a hard link whose target comes from a lower layer before that
// target exists; applying bottom-up, as here, keeps hard links right.
package flatten

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/errdefs"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	maxLinks       = 40 // symlinks followed while resolving one name (Linux's limit)
)

// keptXattrs are the extended attributes carried into the image: file
// capabilities (ping, newuidmap...). Others (SELinux labels, user.*) are
// dropped: they mean nothing in the guest or could confuse the host.
var keptXattrs = map[string]bool{"security.capability": true}

// Stats says what applying a layer did.
type Stats struct {
	Entries int
	// Skipped lists entries not created on the host: device nodes and
	// unsupported tar types. The guest's devtmpfs provides /dev.
	Skipped []string
}

// Tree is a staging directory being built from layers.
type Tree struct {
	root *os.Root
	// MaxBytes and MaxEntries bound what all layers together may unpack
	// (file contents, tar entries); 0 = no bound. A compressed layer can
	// expand a thousandfold: this keeps a hostile one from filling the disk.
	MaxBytes, MaxEntries int64
	bytes, entries       int64
}

// Open opens dir (which must exist) as the tree to apply layers onto.
func Open(dir string) (*Tree, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Tree{root: r}, nil
}

// Close releases the tree's directory handle.
func (t *Tree) Close() error { return t.root.Close() }

// Root is the os.Root of the tree, for the caller's own safe changes.
func (t *Tree) Root() *os.Root { return t.root }

// layerState is what one layer has created so far: an opaque marker hides
// everything in its directory except these.
type layerState struct {
	kept map[string]bool
}

func (l *layerState) keep(p string) {
	for ; p != "." && p != "" && p != "/"; p = path.Dir(p) {
		if l.kept[p] {
			return
		}
		l.kept[p] = true
	}
}

// Apply applies one layer (an uncompressed tar stream). label names the
// layer in errors (its digest).
func (t *Tree) Apply(ctx context.Context, r io.Reader, label string) (Stats, error) {
	var st Stats
	tr := tar.NewReader(r)
	ls := &layerState{kept: map[string]bool{}}
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return st, nil
		}
		if err != nil {
			return st, corrupt(label, err)
		}
		st.Entries++
		if t.entries++; t.MaxEntries > 0 && t.entries > t.MaxEntries {
			return st, tooLarge(label, fmt.Sprintf("more than %d files", t.MaxEntries))
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA { //nolint:staticcheck // old tars still use '\x00'
			// The tar reader yields exactly Size bytes: count before writing.
			if t.bytes += hdr.Size; t.MaxBytes > 0 && t.bytes > t.MaxBytes {
				return st, tooLarge(label, fmt.Sprintf("more than %d MiB", t.MaxBytes>>20))
			}
		}
		if err := t.entry(ctx, tr, hdr, ls, &st); err != nil {
			var e *errdefs.Error
			if errors.As(err, &e) || ctx.Err() != nil {
				return st, err
			}
			return st, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeEnvironmentBuild,
				"layer %s: applying %q", label, hdr.Name)
		}
	}
}

func (t *Tree) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header, ls *layerState, st *Stats) error {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the tree's root itself: its owner and mode are pyro's
	}
	dir, base := path.Split(name)
	switch {
	case base == opaqueMarker:
		d, err := t.resolve(dir, true, ls)
		if err != nil {
			return err
		}
		return t.hideLower(d, ls)
	case strings.HasPrefix(base, whiteoutPrefix):
		gone := strings.TrimPrefix(base, whiteoutPrefix)
		if gone == "" || gone == "." || gone == ".." {
			return unsafeName(hdr.Name, "is a whiteout of nothing")
		}
		d, err := t.resolve(dir, false, ls)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleting what is not there
		}
		if err != nil {
			return err
		}
		return t.root.RemoveAll(path.Join(d, gone))
	}
	parent, err := t.resolve(dir, true, ls)
	if err != nil {
		return err
	}
	p := path.Join(parent, base)
	ls.keep(p)
	switch hdr.Typeflag {
	case tar.TypeDir:
		return t.dir(p, hdr)
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tars still use '\x00'
		return t.file(ctx, p, tr, hdr)
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return unsafeName(hdr.Name, "is a symlink with an empty or invalid target")
		}
		if err := t.clear(p); err != nil {
			return err
		}
		if err := t.root.Symlink(hdr.Linkname, p); err != nil {
			return err
		}
		return t.root.Lchown(p, hdr.Uid, hdr.Gid)
	case tar.TypeLink:
		return t.hardlink(p, hdr, ls)
	case tar.TypeFifo:
		if err := t.clear(p); err != nil {
			return err
		}
		return t.fifo(parent, base, hdr)
	case tar.TypeChar, tar.TypeBlock:
		st.Skipped = append(st.Skipped, "/"+name+" (device node)")
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		st.Skipped = append(st.Skipped, fmt.Sprintf("/%s (tar type %q)", name, hdr.Typeflag))
		return nil
	}
}

// CleanName turns a tar entry name into a clean path relative to the tree
// ("" for the root). ".." anywhere and NUL bytes are refused, not cleaned
// away: a layer that says them is hostile or broken.
func CleanName(n string) (string, error) {
	if strings.ContainsRune(n, 0) {
		return "", unsafeName(n, "contains a NUL byte")
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", unsafeName(n, "climbs out with \"..\"")
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+n), "/")
	return c, nil
}

// resolve returns the real path (no symlinks in it) of dir inside the tree,
// following symlinks chroot-style. Missing directories are created when
// create is set (and counted as this layer's); otherwise they are reported
// as fs.ErrNotExist.
func (t *Tree) resolve(dir string, create bool, ls *layerState) (string, error) {
	parts := split(dir)
	resolved := ""
	links := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		next := path.Join(resolved, c)
		fi, err := t.root.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !create {
				return "", err
			}
			if err := t.root.Mkdir(next, 0o755); err != nil {
				return "", err
			}
			ls.keep(next)
			resolved = next
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxLinks {
				return "", unsafeName(dir, "goes through too many symlinks")
			}
			target, err := t.root.Readlink(next)
			if err != nil {
				return "", err
			}
			base := "/" + resolved
			if path.IsAbs(target) {
				base = "/"
			}
			// Clean of an absolute path stops ".." at the tree's root.
			parts = append(split(path.Clean(path.Join(base, target))), parts...)
			resolved = ""
		case fi.IsDir():
			resolved = next
		default:
			return "", unsafeName(dir, "uses a non-directory ("+next+") as a directory")
		}
	}
	return resolved, nil
}

func split(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// hideLower empties dir of everything this layer has not put there itself.
func (t *Tree) hideLower(dir string, ls *layerState) error {
	name := dir
	if name == "" {
		name = "."
	}
	f, err := t.root.Open(name)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if !ls.kept[p] {
			if err := t.root.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// clear removes whatever is at p (a later layer replaces it).
func (t *Tree) clear(p string) error {
	if _, err := t.root.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return t.root.RemoveAll(p)
}

func (t *Tree) dir(p string, hdr *tar.Header) error {
	fi, err := t.root.Lstat(p)
	if err != nil || !fi.IsDir() {
		if err := t.clear(p); err != nil {
			return err
		}
		if err := t.root.Mkdir(p, 0o700); err != nil {
			return err
		}
	}
	if err := t.root.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if err := t.root.Chmod(p, mode(hdr)); err != nil {
		return err
	}
	return t.root.Chtimes(p, hdr.AccessTime, hdr.ModTime)
}

func (t *Tree) file(ctx context.Context, p string, tr *tar.Reader, hdr *tar.Header) error {
	if err := t.clear(p); err != nil {
		return err
	}
	f, err := t.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, ctxReader{ctx, tr}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return corrupt("", fmt.Errorf("reading %q: %w", hdr.Name, err))
	}
	// Owner before mode (chown clears setuid), capabilities last (chown
	// clears them too).
	if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if err := f.Chmod(mode(hdr)); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !keptXattrs[attr] {
			continue
		}
		if err := unix.Fsetxattr(int(f.Fd()), attr, []byte(v), 0); err != nil {
			return fmt.Errorf("setting %s on %q: %w", attr, hdr.Name, err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return t.root.Chtimes(p, hdr.AccessTime, hdr.ModTime)
}

func (t *Tree) hardlink(p string, hdr *tar.Header, ls *layerState) error {
	target, err := CleanName(hdr.Linkname)
	if err != nil {
		return err
	}
	if target == "" {
		return unsafeName(hdr.Name, "is a hard link to the tree's root")
	}
	tdir, tbase := path.Split(target)
	tparent, err := t.resolve(tdir, false, ls)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return unsafeName(hdr.Name, "is a hard link to "+hdr.Linkname+", which does not exist")
		}
		return err
	}
	tp := path.Join(tparent, tbase)
	fi, err := t.root.Lstat(tp)
	if err != nil {
		return unsafeName(hdr.Name, "is a hard link to "+hdr.Linkname+", which does not exist")
	}
	if fi.IsDir() {
		return unsafeName(hdr.Name, "is a hard link to a directory")
	}
	if tp == p {
		return nil
	}
	if err := t.clear(p); err != nil {
		return err
	}
	return t.root.Link(tp, p)
}

func (t *Tree) fifo(parent, base string, hdr *tar.Header) error {
	name := parent
	if name == "" {
		name = "."
	}
	d, err := t.root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Mknodat(int(d.Fd()), base, unix.S_IFIFO|uint32(hdr.Mode&0o777), 0); err != nil {
		return err
	}
	p := path.Join(parent, base)
	if err := t.root.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	return t.root.Chmod(p, mode(hdr))
}

// mode maps the tar mode bits, setuid, setgid and sticky included.
func mode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func unsafeName(name, why string) error {
	return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageUnsafe,
		"image layer entry %q %s: the image is refused and nothing was installed; use an image from a trusted builder", name, why)
}

func corrupt(label string, err error) error {
	what := "image layer"
	if label != "" {
		what += " " + label
	}
	return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt,
		"%s is not a readable tar stream (pull it again with --force; if it persists the image is broken)", what)
}

// ResolveFile finds name (absolute or relative to the tree) the way a
// process in the guest would, following symlinks chroot-style, and returns
// its real path and information. It is how the caller checks, say, that
// /bin/sh exists without trusting any symlink on the host.
func (t *Tree) ResolveFile(name string) (string, fs.FileInfo, error) {
	clean, err := CleanName(name)
	if err != nil {
		return "", nil, err
	}
	ls := &layerState{kept: map[string]bool{}}
	for range maxLinks {
		dir, base := path.Split(clean)
		parent, err := t.resolve(dir, false, ls)
		if err != nil {
			return "", nil, err
		}
		p := path.Join(parent, base)
		fi, err := t.root.Lstat(p)
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, fi, nil
		}
		target, err := t.root.Readlink(p)
		if err != nil {
			return "", nil, err
		}
		if !path.IsAbs(target) {
			target = path.Join("/"+parent, target)
		}
		clean = strings.TrimPrefix(path.Clean("/"+target), "/")
	}
	return "", nil, unsafeName(name, "goes through too many symlinks")
}

// Relativize rewrites name, when it is a symlink with an absolute target,
// into the equivalent relative one ("sbin -> /usr/sbin" becomes
// "sbin -> usr/sbin"). The guest sees the same tree; pyro's own later
// writes through os.Root (which refuses absolute links) then work.
func (t *Tree) Relativize(name string) error {
	clean, err := CleanName(name)
	if err != nil || clean == "" {
		return err
	}
	fi, err := t.root.Lstat(clean)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	target, err := t.root.Readlink(clean)
	if err != nil || !path.IsAbs(target) {
		return err
	}
	rel, err := filepathRel(path.Dir("/"+clean), path.Clean(target))
	if err != nil {
		return err
	}
	if err := t.root.Remove(clean); err != nil {
		return err
	}
	return t.root.Symlink(rel, clean)
}

// filepathRel is path.Rel for slash paths (both absolute).
func filepathRel(base, target string) (string, error) {
	b, tg := split(base), split(target)
	i := 0
	for i < len(b) && i < len(tg) && b[i] == tg[i] {
		i++
	}
	parts := make([]string, 0, len(b)-i+len(tg)-i)
	for range b[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, tg[i:]...)
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

func tooLarge(label, what string) error {
	return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageTooLarge,
		"the image unpacks to %s (at layer %s), over this host's limit: use a smaller image, or raise the limit with PYRO_MAX_UNPACKED_MIB / PYRO_MAX_UNPACKED_FILES",
		what, label)
}
