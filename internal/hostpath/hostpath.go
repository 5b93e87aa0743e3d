// Package hostpath opens the host paths a caller names: a seed or sync
// source to read, an export output to create. An unconfined Access (the
// operator's own CLI and SDK calls) opens any path; a confined one (a model
// over MCP) opens only beneath the directories the operator granted.
//
// Confined opens never check a path string and then use it: each granted
// directory is opened once as an os.Root, and every later open is relative
// to that handle, so "..", symlinks anywhere in the path (including the last
// component) and a path swapped between check and use cannot leave it.
package hostpath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// CodeDenied is the error code of a host path outside every granted root.
const CodeDenied = errdefs.CodeHostPathDenied

// Grant is one host directory an operator grants to a confined Access.
type Grant struct {
	Path  string // the directory; its last component must not be a symlink
	Write bool   // outputs may be created beneath it (reads are always allowed)
	Label string // what it is for, shown to the model: "project", "exports", ...
}

// Root is a granted directory, opened.
type Root struct {
	Grant
	Real string // absolute and free of symlinks: what was opened
	dir  *os.Root
}

// Access resolves host paths. A nil *Access is unconfined.
type Access struct {
	roots []*Root
}

// Open opens every grant once and returns a confined Access; with no grants
// it denies every host path. A grant that is missing, not a directory, or
// itself a symlink is refused: the operator grants the directory it names.
func Open(grants []Grant) (*Access, error) {
	a := &Access{roots: []*Root{}}
	for _, g := range grants {
		r, err := openRoot(g)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.roots = append(a.roots, r)
	}
	return a, nil
}

func openRoot(g Grant) (*Root, error) {
	abs, err := filepath.Abs(g.Path)
	if err != nil || g.Path == "" {
		return nil, errdefs.InvalidArgument("host root", "%q is not a usable directory path", g.Path)
	}
	fi, err := os.Lstat(abs)
	switch {
	case err != nil:
		return nil, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"host root %s cannot be used; create the directory or grant another one", abs)
	case fi.Mode()&os.ModeSymlink != 0:
		target, _ := filepath.EvalSymlinks(abs)
		return nil, errdefs.InvalidArgument("host root", "%s is a symlink (to %s); grant the directory itself", abs, target)
	case !fi.IsDir():
		return nil, errdefs.InvalidArgument("host root", "%s is not a directory; grant a directory", abs)
	}
	real, err := filepath.EvalSymlinks(abs) // parents such as /tmp -> /private/tmp
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "host root %s cannot be resolved", abs)
	}
	dir, err := os.OpenRoot(real)
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "host root %s cannot be opened", abs)
	}
	g.Path = abs
	return &Root{Grant: g, Real: real, dir: dir}, nil
}

// Confined reports whether paths are limited to granted roots.
func (a *Access) Confined() bool { return a != nil }

// Roots lists the granted roots in grant order (nil when unconfined).
func (a *Access) Roots() []Root {
	if a == nil {
		return nil
	}
	out := make([]Root, len(a.roots))
	for i, r := range a.roots {
		out[i] = Root{Grant: r.Grant, Real: r.Real}
	}
	return out
}

// Close releases the opened roots.
func (a *Access) Close() error {
	if a == nil {
		return nil
	}
	var errs []error
	for _, r := range a.roots {
		errs = append(errs, r.dir.Close())
	}
	return errors.Join(errs...)
}

// locate maps a named path to the root that holds it and the path relative
// to that root. Relative names are taken relative to the first root that
// allows the access. The most specific root allowing the access wins.
func (a *Access) locate(path string, write bool) (*Root, string, error) {
	if path == "" {
		return nil, "", errdefs.InvalidArgument("path", "give a host path")
	}
	if strings.ContainsRune(path, 0) {
		return nil, "", errdefs.InvalidArgument("path", "%q contains a NUL byte", path)
	}
	if !filepath.IsAbs(path) {
		for _, r := range a.roots {
			if !write || r.Write {
				path = filepath.Join(r.Path, path)
				break
			}
		}
		if !filepath.IsAbs(path) {
			return nil, "", a.denied(path, write, "a relative path needs a granted directory to be relative to")
		}
	}
	clean := filepath.Clean(path)
	var best *Root
	var bestRel string
	readOnly := false
	for _, r := range a.roots {
		rel, ok := within(clean, r.Path)
		if !ok {
			rel, ok = within(clean, r.Real)
		}
		if !ok {
			continue
		}
		if write && !r.Write {
			readOnly = true
			continue
		}
		if best == nil || len(r.Real) > len(best.Real) {
			best, bestRel = r, rel
		}
	}
	if best == nil {
		why := "it is outside every directory granted"
		if readOnly {
			why = "it is under a directory granted read-only"
		}
		return nil, "", a.denied(clean, write, why)
	}
	return best, bestRel, nil
}

// within returns path relative to root when path is root or beneath it.
func within(path, root string) (string, bool) {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// denied is the error of a path this Access will not open.
func (a *Access) denied(path string, write bool, why string) error {
	action := "read"
	if write {
		action = "created"
	}
	return errdefs.New(errdefs.ErrPermissionDenied, CodeDenied,
		"host path %s may not be %s: %s (%s); use a path under one of those, or ask the operator to grant the directory",
		path, action, why, a.describe())
}

// describe names the granted roots for error messages and tool descriptions.
func (a *Access) describe() string {
	if len(a.roots) == 0 {
		return "no host directory is granted"
	}
	parts := make([]string, len(a.roots))
	for i, r := range a.roots {
		mode := "read-only"
		if r.Write {
			mode = "read-write"
		}
		label := ""
		if r.Label != "" {
			label = r.Label + ", "
		}
		parts[i] = fmt.Sprintf("%s (%s%s)", r.Path, label, mode)
	}
	return "granted: " + strings.Join(parts, ", ")
}

// Describe says which host directories may be used, for tool descriptions.
func (a *Access) Describe() string {
	if a == nil {
		return "any host path"
	}
	return a.describe()
}

// openErr turns an error of an open beneath a root into a typed error. An
// error that is not an errno comes from os.Root refusing to leave the root.
func (a *Access) openErr(err error, named string, write bool) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "host path %s does not exist; check the path", named)
	case a.Confined() && (!errors.As(err, &errno) || errno == syscall.ELOOP):
		return a.denied(named, write, "it leaves the granted directory through a symlink or \"..\"")
	case errors.Is(err, os.ErrPermission):
		return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"host path %s cannot be opened; check its permissions", named)
	}
	return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "host path %s cannot be used", named)
}
