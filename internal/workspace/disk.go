package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/hostpath"
	"github.com/pyrovm/pyro/internal/vm"
)

// The disk tools read a stopped workspace's disk offline: under the
// workspace lock (so nothing starts meanwhile), the backend exports the
// disk (its overlay over the image) into a raw temp file inside the workspace dir,
// which debugfs (read-only, no -w) inspects; the temp file goes on every
// path. The workspace's own disk is only ever opened for reading.
//
// The guest is untrusted: debugfs only ever gets inode numbers ("<N>"),
// never a guest or user path, so no name needs quoting; paths are walked
// in Go one directory listing (`ls -p`) at a time, symlinks are never
// followed, and every output is bounded.

// CodeRunning refuses a disk tool on a running workspace.
const CodeRunning = errdefs.CodeWorkspaceRunning

// Disk tool limits.
const (
	diskListMaxEntries = 100_000          // entries a listing returns
	diskListMaxDirs    = 20_000           // directories a recursive listing reads
	debugfsMaxOutput   = 16 << 20         // bytes one `ls -p` may print
	debugfsTimeout     = 60 * time.Second // one debugfs run
	diskConvertTimeout = 10 * time.Minute // the backend's raw export of a whole disk
	diskViewPattern    = ".disk-view-*.raw"
	rootIno            = 2 // the ext4 root directory
)

// diskTools are the host commands the disk tools need besides the
// backend's own (its raw export checks for those).
type diskTools struct{ debugfs string }

func findDiskTools() (diskTools, error) {
	dfs, err := env.RequireTool("debugfs", "e2fsprogs")
	if err != nil {
		return diskTools{}, err
	}
	return diskTools{debugfs: dfs}, nil
}

// stoppedDisk takes the workspace lock, checks the workspace is stopped
// and calls f with the path of its current disk.
func (m *Manager) stoppedDisk(ctx context.Context, ref string, f func(p Paths, rec *Record, disk string, t diskTools) error) (*Record, error) {
	t, err := findDiskTools()
	if err != nil {
		return nil, err
	}
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if m.liveState(ctx, rec) == StateRunning {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, CodeRunning,
			"workspace %s is running: the disk tools read a stopped workspace only", rec.ID).
			WithNext("; %s first, or use the file tools while it runs", "pyro workspace stop "+rec.ID, "workspace_stop")
	}
	if rec.State == StateRunning {
		// Its supervisor died: whatever VMM it left must not hold the disk.
		_, _ = vm.ReapOrphans(p.RunDir())
	}
	// Stale views of an interrupted call (we hold the lock: none is in use).
	if ents, err := os.ReadDir(p.Dir); err == nil {
		for _, e := range ents {
			if ok, _ := path.Match(diskViewPattern, e.Name()); ok {
				os.Remove(filepath.Join(p.Dir, e.Name()))
			}
		}
	}
	disk := p.Disk()
	if p.ResetInterrupted() {
		disk = p.PreResetDisk() // an interrupted reset: the next start rolls back to this one
	}
	if _, err := os.Stat(disk); err != nil {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeDiskMissing,
			"workspace %s has no disk yet (it was never started)", rec.ID).
			WithNext(": %s once first", "pyro workspace start "+rec.ID, "workspace_start")
	}
	return rec, f(p, rec, disk, t)
}

// exportRaw writes a raw copy of the disk (with what it reads through) into
// out, an empty file; the disk must not be in use.
func (m *Manager) exportRaw(ctx context.Context, disk string, out *os.File) error {
	ctx, cancel := context.WithTimeout(ctx, diskConvertTimeout)
	defer cancel()
	return m.backend.ExportRaw(ctx, disk, out)
}

// withRawView runs f on a raw temp copy of the stopped workspace's disk.
func (m *Manager) withRawView(ctx context.Context, ref string, f func(v *diskView) error) (*Record, error) {
	return m.stoppedDisk(ctx, ref, func(p Paths, _ *Record, disk string, t diskTools) error {
		tmp, err := os.CreateTemp(p.Dir, diskViewPattern)
		if err != nil {
			return err
		}
		name := tmp.Name()
		defer os.Remove(name)
		err = m.exportRaw(ctx, disk, tmp)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return f(&diskView{debugfs: t.debugfs, img: name})
	})
}

// diskView reads one raw ext4 image with debugfs.
type diskView struct {
	debugfs string
	img     string
}

// run runs one read-only debugfs request; stdout beyond max fails it.
func (v *diskView) run(ctx context.Context, request string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, debugfsTimeout)
	defer cancel()
	out := capBuffer{max: max, cancel: cancel}
	var stderr capBuffer
	stderr.max = 64 << 10
	cmd := exec.CommandContext(ctx, v.debugfs, "-R", request, v.img)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.Env = toolEnv()
	err := cmd.Run()
	if out.over {
		return nil, errTooMuchOutput
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // canceled, or timeout
		}
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal,
			"debugfs failed on the workspace disk (%s)", strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

var errTooMuchOutput = errors.New("debugfs printed more than allowed")

// toolEnv: a C locale and no pager for debugfs.
func toolEnv() []string {
	return append(os.Environ(), "LC_ALL=C", "PAGER=__none__", "DEBUGFS_PAGER=__none__")
}

// capBuffer keeps up to max bytes; past that it records the overflow and
// cancels the command (when cancel is set). Not an embedded bytes.Buffer:
// its ReadFrom would let io.Copy bypass the cap.
type capBuffer struct {
	buf    bytes.Buffer
	max    int64
	over   bool
	cancel func()
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if c.over {
		return len(p), nil
	}
	if int64(c.buf.Len()+len(p)) > c.max {
		c.over = true
		if c.cancel != nil {
			c.cancel()
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capBuffer) Bytes() []byte  { return c.buf.Bytes() }
func (c *capBuffer) String() string { return c.buf.String() }

// dirent is one entry of a debugfs `ls -p` listing.
type dirent struct {
	Ino  uint32
	Mode uint32 // st_mode: type and permission bits
	Name string
	Size int64 // 0 for directories (debugfs does not print it)
}

const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
)

func (d dirent) isDir() bool { return d.Mode&sIFMT == sIFDIR }

func (d dirent) kind() string {
	switch d.Mode & sIFMT {
	case sIFREG:
		return "file"
	case sIFDIR:
		return "dir"
	case sIFLNK:
		return "symlink"
	}
	return "other"
}

// parseLsP parses the output of debugfs `ls -p DIR`: one record per entry,
// "/INO/MODE/UID/GID/NAME/SIZE/\n" (SIZE empty for directories). Names
// cannot contain '/' (but may contain newlines and any other byte), so the
// output splits on '/' into fixed groups of seven fields, the seventh being
// the record separator. Anything else is refused rather than guessed at.
// "." and ".." are left out.
func parseLsP(out []byte) ([]dirent, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, errNotDir
	}
	f := strings.Split(string(out), "/")
	if f[0] != "" || (len(f)-1)%7 != 0 {
		return nil, errBadListing
	}
	var ents []dirent
	for i := 1; i < len(f); i += 7 {
		r := f[i : i+7]
		sep := r[6]
		last := i+7 == len(f)
		if !(sep == "\n" || last && sep == "\n\n") {
			return nil, errBadListing
		}
		ino, err := strconv.ParseUint(r[0], 10, 32)
		if err != nil || ino == 0 {
			return nil, errBadListing
		}
		mode, err := strconv.ParseUint(r[1], 8, 32)
		if err != nil || len(r[1]) != 6 || mode > 0o177777 {
			return nil, errBadListing
		}
		if !digits(r[2]) || !digits(r[3]) {
			return nil, errBadListing
		}
		name := r[4]
		if name == "" || strings.ContainsRune(name, 0) {
			return nil, errBadListing
		}
		var size int64
		if uint32(mode)&sIFMT == sIFDIR {
			if r[5] != "" {
				return nil, errBadListing
			}
		} else if size, err = strconv.ParseInt(r[5], 10, 64); err != nil || size < 0 || !digits(r[5]) {
			return nil, errBadListing
		}
		if name == "." || name == ".." {
			continue
		}
		ents = append(ents, dirent{Ino: uint32(ino), Mode: uint32(mode), Name: name, Size: size})
	}
	return ents, nil
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

var (
	errNotDir     = errors.New("not a directory")
	errBadListing = errors.New("debugfs printed a listing that does not parse")
)

// listDir lists the directory with inode ino, sorted by name.
func (v *diskView) listDir(ctx context.Context, ino uint32, where string) ([]dirent, error) {
	out, err := v.run(ctx, fmt.Sprintf("ls -p <%d>", ino), debugfsMaxOutput)
	if errors.Is(err, errTooMuchOutput) {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge, "the directory %s is too large to list offline", where)
	}
	if err != nil {
		return nil, err
	}
	ents, err := parseLsP(out)
	if errors.Is(err, errNotDir) {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeNotADirectory, "%s is not a directory", where)
	}
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeDiskUnreadable,
			"reading %s from the workspace disk: the guest filesystem looks damaged; start the workspace and check it with the file tools", where)
	}
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents, nil
}

// lookup finds a guest path (clean, absolute, under /workspace) by walking
// from the root directory one listing at a time. No symlink is followed:
// one on the way is refused, so the walk never leaves /workspace.
func (v *diskView) lookup(ctx context.Context, guest string) (dirent, error) {
	cur := dirent{Ino: rootIno, Mode: sIFDIR, Name: "/"}
	walked := ""
	for _, el := range strings.Split(strings.TrimPrefix(guest, "/"), "/") {
		ents, err := v.listDir(ctx, cur.Ino, orRoot(walked))
		if err != nil {
			return dirent{}, err
		}
		walked += "/" + el
		found := false
		for _, e := range ents {
			if e.Name == el {
				cur, found = e, true
				break
			}
		}
		if !found {
			return dirent{}, errdefs.New(errdefs.ErrNotFound, errdefs.CodeNotFound, "%s does not exist on the workspace disk", walked)
		}
		if cur.Mode&sIFMT == sIFLNK {
			return dirent{}, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeIsSymlink,
				"%s is a symlink: the disk tools never follow symlinks; list its directory to see it, or give the target path", walked)
		}
		if walked != guest && !cur.isDir() {
			return dirent{}, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeNotADirectory, "%s is not a directory", walked)
		}
	}
	return cur, nil
}

func orRoot(s string) string {
	if s == "" {
		return "/"
	}
	return s
}

// DiskList lists a directory of a stopped workspace's disk (one level, or
// the whole tree), in the shape of FileList.
func (m *Manager) DiskList(ctx context.Context, ref, guest string, recursive bool) (*Record, []FileEntry, error) {
	dir, err := GuestPath("path", guest)
	if err != nil {
		return nil, nil, err
	}
	out := []FileEntry{}
	r, err := m.withRawView(ctx, ref, func(v *diskView) error {
		d, err := v.lookup(ctx, dir)
		if err != nil {
			return err
		}
		if !d.isDir() {
			return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeNotADirectory, "%s is not a directory: use disk read for files", dir)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(dir, Root), "/")
		seen := map[uint32]bool{d.Ino: true}
		dirs := 0
		var walk func(ino uint32, rel string) error
		walk = func(ino uint32, rel string) error {
			if dirs++; dirs > diskListMaxDirs {
				return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge, "%s has more than %d directories: list a subdirectory, or without --recursive", dir, diskListMaxDirs)
			}
			ents, err := v.listDir(ctx, ino, path.Join(Root, rel))
			if err != nil {
				return err
			}
			for _, e := range ents {
				if len(out) >= diskListMaxEntries {
					return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge, "%s has more than %d entries: list a subdirectory, or without --recursive", dir, diskListMaxEntries)
				}
				p := path.Join(rel, e.Name)
				out = append(out, FileEntry{Path: p, Type: e.kind(), Size: e.Size, Mode: strconv.FormatUint(uint64(e.Mode&0o7777), 8)})
				if recursive && e.isDir() && !seen[e.Ino] { // a damaged disk may loop
					seen[e.Ino] = true
					if err := walk(e.Ino, p); err != nil {
						return err
					}
				}
			}
			return nil
		}
		return walk(d.Ino, rel)
	})
	if err != nil {
		return nil, nil, err
	}
	return r, out, nil
}

// DiskRead returns the content of one regular file of a stopped
// workspace's disk, refusing files larger than maxBytes.
func (m *Manager) DiskRead(ctx context.Context, ref, guest string, maxBytes int64) (*Record, []byte, error) {
	src, err := GuestPath("path", guest)
	if err != nil {
		return nil, nil, err
	}
	var content []byte
	r, err := m.withRawView(ctx, ref, func(v *diskView) error {
		e, err := v.lookup(ctx, src)
		if err != nil {
			return err
		}
		if e.Mode&sIFMT != sIFREG {
			return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeNotAFile, "%s is not a regular file (it is a %s): use disk list for directories", src, e.kind())
		}
		if e.Size > maxBytes {
			return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge,
				"%s is larger than max_bytes (%d): raise max_bytes, or start the workspace and read a part with exec (e.g. head -c)", src, maxBytes)
		}
		b, err := v.run(ctx, fmt.Sprintf("cat <%d>", e.Ino), maxBytes)
		if errors.Is(err, errTooMuchOutput) {
			return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge, "%s is larger than max_bytes (%d)", src, maxBytes)
		}
		if err != nil {
			return err
		}
		if int64(len(b)) != e.Size {
			return errdefs.New(errdefs.ErrInternal, errdefs.CodeDiskUnreadable, "reading %s from the workspace disk gave %d bytes instead of %d: the guest filesystem looks damaged", src, len(b), e.Size)
		}
		content = b
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	red, err := m.redactor(r.ID)
	if err != nil {
		return nil, nil, err
	}
	return r, red.Bytes(content), nil
}

// DiskExport writes the whole disk of a stopped workspace as a raw ext4
// image to a new host path: into a temp file beside it, then renamed into
// place without replacing anything, so a failure leaves nothing behind.
func (m *Manager) DiskExport(ctx context.Context, ref string, out *hostpath.Target) (*Record, int64, error) {
	var size int64
	r, err := m.stoppedDisk(ctx, ref, func(p Paths, _ *Record, disk string, t diskTools) error {
		name := hostpath.TempName(".pyro-disk-export-")
		forget, err := trackOutputTemp(p, out, name)
		if err != nil {
			return err
		}
		defer forget()
		tmp, err := out.CreateTemp(name)
		if err != nil {
			return err
		}
		defer out.RemoveTemp(name) // a no-op once published
		defer tmp.Close()
		// The backend writes through the opened file, not a path that
		// could be swapped meanwhile.
		if err := m.exportRaw(ctx, disk, tmp); err != nil {
			return err
		}
		st, err := tmp.Stat()
		if err != nil {
			return err
		}
		size = st.Size()
		return out.Publish(name)
	})
	if err != nil {
		return nil, 0, err
	}
	return r, size, nil
}
