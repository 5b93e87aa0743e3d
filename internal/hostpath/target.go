package hostpath

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Target is a new host path to create: its parent directory, opened, and
// the name to create in it. Outputs are built under temporary names in the
// parent and published by a rename that never replaces anything.
type Target struct {
	Path   string // absolute, as named
	Name   string // the last component, created in the parent
	parent *os.Root
	dirFD  *os.File // the parent as a file, for renameat2
}

// OpenTarget opens the parent of a path to create; the path itself must not
// exist. Unconfined, symlinks in the parent's path are followed, once,
// here; confined, only while they stay inside the granted root. The name
// itself is never followed: it is created.
func (a *Access) OpenTarget(path string) (*Target, error) {
	var named, name string
	var open func() (*os.Root, error)
	if !a.Confined() {
		if path == "" {
			return nil, errdefs.InvalidArgument("output", "give a host path to create")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, errdefs.InvalidArgument("output", "%q: %v", path, err)
		}
		named, name = abs, filepath.Base(abs)
		open = func() (*os.Root, error) { return os.OpenRoot(filepath.Dir(abs)) }
	} else {
		r, rel, err := a.locate(path, true)
		if err != nil {
			return nil, err
		}
		if rel == "." {
			return nil, errdefs.New(errdefs.ErrAlreadyExists, errdefs.CodeAlreadyExists,
				"output %s is a granted directory itself: name a new path inside it", r.Path)
		}
		named, name = filepath.Join(r.Path, rel), filepath.Base(rel)
		open = func() (*os.Root, error) { return r.dir.OpenRoot(filepath.Dir(rel)) }
	}
	if name == "/" || name == "." || name == ".." {
		return nil, errdefs.InvalidArgument("output", "%s names no new file: give a path ending in a file name", named)
	}
	parent, err := open()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, errdefs.InvalidArgument("output", "the parent of %s does not exist or is not a directory: create it first", named)
		}
		return nil, a.openErr(err, filepath.Dir(named), true)
	}
	t := &Target{Path: named, Name: name, parent: parent}
	if t.dirFD, err = parent.Open("."); err != nil {
		parent.Close()
		return nil, a.openErr(err, filepath.Dir(named), true)
	}
	if _, err := parent.Lstat(name); err == nil {
		t.Close()
		return nil, t.exists()
	}
	return t, nil
}

func (t *Target) exists() error {
	return errdefs.New(errdefs.ErrAlreadyExists, errdefs.CodeAlreadyExists, "output %s already exists: remove it or pick another path", t.Path)
}

// Close releases the parent directory.
func (t *Target) Close() error {
	return errors.Join(t.dirFD.Close(), t.parent.Close())
}

// TempName is a fresh temporary name: prefix and 16 random hex digits.
// Callers that must record a temporary before it exists (so that a kill
// at any moment leaves nothing unknown) take the name first.
func TempName(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// MkdirTemp creates the private directory name (from TempName) beside the
// output and opens it. The caller removes it with RemoveTemp.
func (t *Target) MkdirTemp(name string) (*os.Root, error) {
	if err := t.parent.Mkdir(name, 0o700); err != nil {
		return nil, err
	}
	dir, err := t.parent.OpenRoot(name)
	if err != nil {
		t.parent.Remove(name)
		return nil, err
	}
	return dir, nil
}

// CreateTemp creates the private file name (from TempName) beside the
// output, failing if it exists. The caller removes it with RemoveTemp.
func (t *Target) CreateTemp(name string) (*os.File, error) {
	return t.parent.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

// RemoveTemp removes a temporary made by MkdirTemp or CreateTemp (a no-op
// once it was published).
func (t *Target) RemoveTemp(name string) error {
	return t.parent.RemoveAll(name)
}

// Publish renames from (relative to the parent: a temporary, or an entry
// directly inside a temporary directory) to the output's name, failing with
// already_exists instead of replacing anything there.
func (t *Target) Publish(from string) error {
	fromDir := t.dirFD
	if dir, base, ok := strings.Cut(from, "/"); ok {
		f, err := t.parent.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		fromDir, from = f, base
	}
	err := unix.Renameat2(int(fromDir.Fd()), from, int(t.dirFD.Fd()), t.Name, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No RENAME_NOREPLACE on this filesystem: check, then rename.
		if _, lerr := t.parent.Lstat(t.Name); lerr == nil {
			return t.exists()
		}
		err = unix.Renameat(int(fromDir.Fd()), from, int(t.dirFD.Fd()), t.Name)
	}
	if errors.Is(err, unix.EEXIST) {
		return t.exists()
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: t.Path, Err: err}
	}
	return nil
}
