//go:build linux

package agent

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// extractor unpacks a tar stream for one put_archive into its staging
// directory (see stage.go) and builds the plan that moves it into place.
// The destination is read through an os.Root, which refuses every path
// (symlinks included) that leads out of it, and never written. Allowed:
// regular files, directories, symlinks (pointing anywhere: nothing is
// written through one) and hard links to files extracted earlier. Existing
// files and symlinks are replaced; an existing directory is only ever merged
// into. An entry beneath a symlink or file of the same archive is refused.
type extractor struct {
	st      *staging
	dest    *os.Root // the destination when it exists; nil when this put creates it
	base    string   // when dest is nil: the destination's staged path
	destRel string   // the destination, relative to the workspace root
	limit   int64    // file content bytes at most
	res     agentproto.ArchiveResult
	plan    putPlan
	top     map[string]int    // entries placed into existing directories: name -> place step
	files   map[string]string // regular files extracted so far (hard link targets): name -> staged path
	dirs    []dirMeta         // mode and times are applied last
	dirAt   map[string]int    // index in dirs
	mounts  map[string]bool   // existing directories checked to be on the staging filesystem
	removed map[string]bool   // entries of the destination this put removes: absent for the archive
}

type dirMeta struct {
	name         string
	staged       string // "" for an existing directory of the destination
	mode         fs.FileMode
	atime, mtime time.Time
}

func newExtractor(st *staging, limit int64) *extractor {
	return &extractor{st: st, limit: limit, top: map[string]int{}, files: map[string]string{},
		dirAt: map[string]int{}, mounts: map[string]bool{}, removed: map[string]bool{}}
}

// remove checks the entries the put removes (names relative to the
// destination) and adds their steps to the plan, before the archive is
// read: each must be a file or symlink of the destination, reached without
// leaving the workspace, on the staging filesystem; the last element of a
// name is not followed (a symlink is removed, not its target).
func (x *extractor) remove(names []string) error {
	if agentproto.RemoveSize(names) > agentproto.MaxRemoveBytes {
		return wireError(agentproto.ErrCodeBadRequest, "the names to remove take more than %d bytes: split the change", agentproto.MaxRemoveBytes)
	}
	for _, raw := range names {
		name, err := removeName(raw)
		if err != nil {
			return err
		}
		if x.removed[name] {
			return wireError(agentproto.ErrCodeBadRequest, "%q is named twice to remove", raw)
		}
		if x.dest == nil {
			return wireError(agentproto.ErrCodeNotFound, "%q, which this put removes, does not exist (its destination does not)", raw)
		}
		fi, err := x.dest.Lstat(name)
		switch {
		case isEscape(err):
			return wireError(agentproto.ErrCodeOutside, "%q, which this put removes, leads outside %s through a symlink", raw, agentproto.WorkspaceRoot)
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			return wireError(agentproto.ErrCodeNotFound, "%q, which this put removes, does not exist", raw)
		case err != nil:
			return destError(raw, err)
		case fi.IsDir():
			return wireError(agentproto.ErrCodeBadRequest, "%q, which this put removes, is a directory: a put removes files and symlinks only", raw)
		}
		if err := x.checkMount(x.dest, path.Dir(name), raw); err != nil {
			return err
		}
		x.removed[name] = true
		x.plan.Removes = append(x.plan.Removes, removeStep{Staged: x.st.newTop(), Path: path.Join(x.destRel, name)})
	}
	return nil
}

// removeName validates and cleans a name to remove.
func removeName(raw string) (string, error) {
	if raw == "" || strings.HasPrefix(raw, "/") {
		return "", wireError(agentproto.ErrCodeOutside, "%q to remove is not a path relative to the destination", raw)
	}
	name := filepath.Clean(raw)
	switch {
	case !filepath.IsLocal(name):
		return "", wireError(agentproto.ErrCodeOutside, "%q to remove leads outside the destination", raw)
	case name == ".":
		return "", wireError(agentproto.ErrCodeBadRequest, "%q to remove names the destination itself", raw)
	}
	return name, nil
}

// lstatDest is dest.Lstat, but an entry this put removes is absent.
func (x *extractor) lstatDest(name string) (fs.FileInfo, error) {
	if x.removed[name] {
		return nil, &os.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	return x.dest.Lstat(name)
}

// statDest is dest.Stat, but an entry this put removes is absent.
func (x *extractor) statDest(name string) (fs.FileInfo, error) {
	if x.removed[name] {
		return nil, &os.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return x.dest.Stat(name)
}

// openDest resolves the destination (relative to the workspace root ws):
// its existing part is followed as MkdirAll would, its missing part is
// staged as one new directory tree.
func (x *extractor) openDest(ws *os.Root, reqPath, rel string) error {
	x.destRel = rel
	notDir := func() error {
		return wireError(agentproto.ErrCodeBadRequest, "%s is not a directory, or one of its parents is not", reqPath)
	}
	if rel != "." {
		parts := strings.Split(rel, "/")
		for i := range parts {
			q := strings.Join(parts[:i+1], "/")
			fi, err := ws.Stat(q)
			switch {
			case err == nil && fi.IsDir():
				continue
			case err == nil || errors.Is(err, syscall.ENOTDIR):
				return notDir()
			case !errors.Is(err, fs.ErrNotExist):
				return destError(reqPath, err)
			}
			if err := x.checkMount(ws, path.Dir(q), reqPath); err != nil {
				return err
			}
			top := x.addTop(q, true)
			x.base = path.Join(top, strings.Join(parts[i+1:], "/"))
			if err := x.st.put.Mkdir(top, 0o755); err != nil {
				return destError(reqPath, err)
			}
			if err := x.st.mkdirAll(x.base); err != nil {
				return destError(reqPath, err)
			}
			return nil
		}
	}
	if err := x.checkMount(ws, rel, reqPath); err != nil {
		return err
	}
	dest, err := ws.OpenRoot(rel)
	if err != nil {
		return destError(reqPath, err)
	}
	x.dest = dest
	clear(x.mounts) // its names were relative to the workspace, later ones to dest
	return nil
}

// checkMount refuses an existing directory on another filesystem than the
// staging directory (one a guest command mounted): a rename cannot cross it.
func (x *extractor) checkMount(r *os.Root, dir, what string) error {
	if x.mounts[dir] {
		return nil
	}
	f, err := r.Open(dir)
	if err != nil {
		return destError(what, err)
	}
	defer f.Close()
	id, err := mountID(f)
	if err != nil {
		return destError(what, err)
	}
	if id != x.st.mnt {
		return wireError(agentproto.ErrCodeBadRequest,
			"%s is on a filesystem mounted inside the guest, not on the workspace disk: file transfers write only to the workspace disk (copy it there with exec)", what)
	}
	x.mounts[dir] = true
	return nil
}

// addTop adds a place step for a new staged entry at wsPath (relative to
// the workspace root) and returns its staged path.
func (x *extractor) addTop(wsPath string, dir bool) string {
	staged := x.st.newTop()
	x.plan.Places = append(x.plan.Places, placeStep{Staged: staged, Path: wsPath, Dir: dir})
	return staged
}

func (x *extractor) close() {
	if x.dest != nil {
		x.dest.Close()
	}
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
	staged, _, err := x.slot(name, false)
	if err != nil {
		return err
	}
	f, err := x.st.put.OpenFile(staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return x.fail(name, err)
	}
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
		err = x.st.put.Chtimes(staged, accessTime(hdr), hdr.ModTime)
	}
	if err != nil {
		return x.fail(name, err)
	}
	x.files[name] = staged
	x.res.Entries++
	return nil
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	staged, exists, err := x.slot(name, true)
	if err != nil {
		return err
	}
	mode := headerMode(hdr)
	if !exists {
		// Writable and searchable until finishDirs sets the final mode.
		if err := x.st.put.Mkdir(staged, mode.Perm()|0o700); err != nil {
			return x.fail(name, err)
		}
	}
	meta := dirMeta{name: name, staged: staged, mode: mode, atime: accessTime(hdr), mtime: hdr.ModTime}
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
	staged, _, err := x.slot(name, false)
	if err != nil {
		return err
	}
	if err := x.st.put.Symlink(hdr.Linkname, staged); err != nil {
		return x.fail(name, err)
	}
	x.res.Entries++
	return nil
}

func (x *extractor) link(name string, hdr *tar.Header) error {
	target, err := entryName(hdr.Linkname)
	if err != nil {
		return wireError(agentproto.ErrCodeOutside, "hard link %q points to %q, outside the destination", hdr.Name, hdr.Linkname)
	}
	if _, ok := x.files[target]; !ok {
		return badArchive("hard link %q points to %q, which is not a regular file earlier in the archive", hdr.Name, hdr.Linkname)
	}
	if target != name {
		staged, _, err := x.slot(name, false)
		if err != nil {
			return err
		}
		if err := x.st.put.Link(x.files[target], staged); err != nil {
			return x.fail(name, err)
		}
		x.files[name] = staged
	}
	x.res.Entries++
	return nil
}

// slot finds where the entry name goes in staging and clears the way: an
// entry of this archive already there is removed (the later one wins), an
// existing file or symlink of the destination gets a place step that
// replaces it, and an existing directory is kept for a directory entry
// (exists) and refused otherwise. For an existing directory of the
// destination staged is "".
func (x *extractor) slot(name string, isDir bool) (staged string, exists bool, err error) {
	parent, err := x.parent(name)
	if err != nil {
		return "", false, x.fail(name, err)
	}
	dirExists := func() error {
		return badArchive("entry %q is not a directory but a directory exists at that path in the guest: remove it first", name)
	}
	if parent != "" { // inside a staged tree
		staged = path.Join(parent, path.Base(name))
		fi, err := x.st.put.Lstat(staged)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return staged, false, nil
		case err != nil:
			return "", false, x.fail(name, err)
		case fi.IsDir() && isDir:
			return staged, true, nil
		case fi.IsDir():
			return "", false, dirExists()
		}
		delete(x.files, name)
		return staged, false, x.replaceStaged(name, staged)
	}
	if i, ok := x.top[name]; ok { // placed by this archive into an existing directory
		p := x.plan.Places[i]
		staged = p.Staged
		switch {
		case p.Dir && isDir:
			return staged, true, nil
		case p.Dir:
			return "", false, dirExists()
		}
		delete(x.files, name)
		if isDir { // a directory replaces the archive's own file
			x.plan.Places[i].Dir = true
		}
		return staged, false, x.replaceStaged(name, staged)
	}
	fi, err := x.lstatDest(name)
	switch {
	case err == nil && fi.IsDir() && isDir:
		return "", true, nil
	case err == nil && fi.IsDir():
		return "", false, dirExists()
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", false, x.fail(name, err)
	}
	if err := x.checkMount(x.dest, path.Dir(name), name); err != nil {
		return "", false, err
	}
	x.top[name] = len(x.plan.Places)
	return x.addTop(path.Join(x.destRel, name), isDir), false, nil
}

func (x *extractor) replaceStaged(name, staged string) error {
	if err := x.st.put.Remove(staged); err != nil {
		return x.fail(name, err)
	}
	return nil
}

// parent returns the staged path of name's parent directory, creating the
// missing ones, or "" when the parent is an existing directory of the
// destination. Existing symlinks of the destination are followed (inside
// it), as MkdirAll would; the archive's own are not.
func (x *extractor) parent(name string) (string, error) {
	dir := path.Dir(name)
	if x.dest == nil {
		p := path.Join(x.base, dir)
		return p, x.st.mkdirAll(p)
	}
	if dir == "." {
		return "", nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		q := strings.Join(parts[:i+1], "/")
		rest := strings.Join(parts[i+1:], "/")
		if j, ok := x.top[q]; ok {
			p := x.plan.Places[j]
			if !p.Dir {
				staged := p.Staged
				if target, err := x.st.put.Readlink(staged); err == nil {
					return "", &beneathLink{target: target}
				}
				return "", &os.PathError{Op: "mkdir", Path: q, Err: syscall.ENOTDIR}
			}
			staged := path.Join(p.Staged, rest)
			return staged, x.st.mkdirAll(staged)
		}
		fi, err := x.statDest(q)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return "", &os.PathError{Op: "mkdir", Path: q, Err: syscall.ENOTDIR}
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		}
		if err := x.checkMount(x.dest, path.Dir(q), q); err != nil {
			return "", err
		}
		x.top[q] = len(x.plan.Places)
		top := x.addTop(path.Join(x.destRel, q), true)
		if err := x.st.put.Mkdir(top, 0o755); err != nil {
			return "", err
		}
		staged := path.Join(top, rest)
		return staged, x.st.mkdirAll(staged)
	}
	return "", nil
}

// finishDirs sets directory modes and times, deepest (latest) first, once
// nothing more is written into them: staged ones now, existing ones of the
// destination by the plan, after the places.
func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if d.staged == "" {
			x.plan.Dirs = append(x.plan.Dirs, dirStep{Path: path.Join(x.destRel, d.name), Mode: d.mode, Atime: d.atime, Mtime: d.mtime})
			continue
		}
		if err := x.st.put.Chmod(d.staged, d.mode); err != nil {
			return x.fail(d.name, err)
		}
		if err := x.st.put.Chtimes(d.staged, d.atime, d.mtime); err != nil {
			return x.fail(d.name, err)
		}
	}
	return nil
}

func (x *extractor) fail(name string, err error) error {
	var werr *agentproto.Error
	var link *beneathLink
	switch {
	case errors.As(err, &werr):
		return werr
	case errors.As(err, &link) && (path.IsAbs(link.target) || !filepath.IsLocal(link.target)):
		return wireError(agentproto.ErrCodeOutside, "entry %q leads outside the destination through a symlink of the archive", name)
	case errors.As(err, &link):
		return badArchive("entry %q lies beneath a symlink of the archive, which is not followed", name)
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
