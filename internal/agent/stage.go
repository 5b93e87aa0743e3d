//go:build linux

package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A put_archive is all or nothing, also when QEMU is killed or the guest
// panics at any instant. While the archive streams in, nothing is written
// under the workspace: every entry goes into a private staging directory on
// the workspace's filesystem (outside /workspace, so diff, export, list and
// snapshots never see it). Then:
//
//  1. the plan (which staged entry goes where) is written next to the staged
//     entries and the filesystem is synced (syncfs): all of it is on disk;
//  2. the put's directory is renamed from put-* to commit-*: the commit point;
//  3. each entry the put removes is renamed out of the workspace into the
//     put's directory (no space needed, and it can be put back); then each
//     staged entry is renamed into place (an entry it replaces is exchanged
//     with it, RENAME_EXCHANGE, likewise), and the directories' modes and
//     times are set;
//  4. the call's flush (syncfs) runs, the call answers, and the directory
//     is removed, the removed entries with it (a crash before that finishes
//     it again at start: every step is found done).
//
// A new directory tree is staged whole and placed with one rename. ext4's
// journal commits metadata operations in order, so a rename into the
// workspace that survives a crash implies the commit rename survived too.
// At start, before serving, the agent removes every put-* directory (roll
// back: the workspace was never touched) and finishes every commit-* one
// (roll forward: a place is done when the workspace's entry has the staged
// entry's inode, a removal when the put's directory holds the removed
// entry, so repeating the pass is harmless). A put that fails after
// the commit point (e.g. ENOSPC on a rename) renames its directory to abort-*
// and puts back what it placed, then what it removed; a crash meanwhile
// finishes the rollback at start.

// defaultStagingRoot holds the puts' staging directories in the guest; it
// must be on the filesystem of agentproto.WorkspaceRoot (the root disk).
const defaultStagingRoot = "/var/lib/pyro-agent/staging"

// Names in the staging root and in one put's directory.
const (
	putPrefix    = "put-"      // being filled: removed at start
	commitPrefix = "commit-"   // plan on disk: finished at start
	abortPrefix  = "abort-"    // failed after the commit point: undone at start
	planName     = "plan.json" // beside the staged entries, which are named 1, 2, ...
)

// putPlan is what the commit record holds. Its steps run in this order:
// removals, places, directories.
type putPlan struct {
	Removes []removeStep `json:"removes,omitempty"`
	Places  []placeStep  `json:"places"`
	Dirs    []dirStep    `json:"dirs,omitempty"` // existing directories the archive sets modes and times of, deepest first
}

// removeStep moves one entry (a file or symlink) of the workspace out into
// the put's directory, where it goes with the directory.
type removeStep struct {
	Staged string `json:"staged"` // its name in the put's directory once removed
	Path   string `json:"path"`   // relative to the workspace root
}

// placeStep moves one staged entry (a file, a symlink or a whole new
// directory tree) into the workspace.
type placeStep struct {
	Staged string `json:"staged"` // name in the put's files directory
	Path   string `json:"path"`   // relative to the workspace root
	Ino    uint64 `json:"ino"`    // the staged entry's inode: tells a done step from one to do
	Dir    bool   `json:"dir,omitempty"`
}

type dirStep struct {
	Path  string      `json:"path"` // relative to the workspace root
	Mode  fs.FileMode `json:"mode"`
	Atime time.Time   `json:"atime"`
	Mtime time.Time   `json:"mtime"`
}

// staging is one put's staging directory.
type staging struct {
	root  *os.Root // the staging root
	name  string   // the put's directory in root (put-*, then commit-*)
	put   *os.Root // the put's directory
	files *os.File // the same, for renameat2
	mnt   uint64   // mount of the staging root: places must not cross it
	n     int      // staged entries so far
}

// newStaging makes a fresh put directory under dir (created when missing).
func newStaging(dir string) (*staging, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	st := &staging{root: root}
	var b [8]byte
	_, _ = rand.Read(b[:])
	st.name = putPrefix + hex.EncodeToString(b[:])
	err = root.Mkdir(st.name, 0o700)
	if err == nil {
		st.put, err = root.OpenRoot(st.name)
	}
	if err == nil {
		st.files, err = root.Open(st.name)
	}
	if err == nil {
		st.mnt, err = mountID(st.files)
	}
	if err != nil {
		st.discard()
		return nil, err
	}
	return st, nil
}

// newTop names the next staged entry (its path in the put's directory).
func (st *staging) newTop() string {
	st.n++
	return strconv.Itoa(st.n)
}

// mkdirAll creates the missing directories of p (a path in the put's
// directory) one by one, never following a symlink: everything in staging
// comes from the archive, and its symlinks are not traversed.
func (st *staging) mkdirAll(p string) error {
	cur := ""
	for part := range strings.SplitSeq(p, "/") {
		cur = path.Join(cur, part)
		fi, err := st.put.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			target, _ := st.put.Readlink(cur)
			return &beneathLink{target: target}
		case err == nil:
			return &os.PathError{Op: "mkdir", Path: cur, Err: syscall.ENOTDIR}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := st.put.Mkdir(cur, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// beneathLink is an entry beneath a symlink of its own archive, which is
// never followed.
type beneathLink struct{ target string }

func (e *beneathLink) Error() string { return "beneath a symlink to " + e.target }

// commit makes the staged entries and plan durable and passes the commit
// point. On error nothing of the put is in the workspace.
func (st *staging) commit(plan *putPlan) error {
	if commitHook != nil && commitHook("staged") {
		return errCrashed
	}
	for i := range plan.Places {
		fi, err := st.put.Lstat(plan.Places[i].Staged)
		if err != nil {
			return err
		}
		plan.Places[i].Ino = inode(fi)
	}
	b, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	f, err := st.put.OpenFile(planName, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // again after ENOSPC
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := unix.Syncfs(int(st.files.Fd())); err != nil {
		return err
	}
	if commitHook != nil && commitHook("synced") {
		return errCrashed
	}
	name := commitPrefix + strings.TrimPrefix(st.name, putPrefix)
	if err := st.root.Rename(st.name, name); err != nil {
		return err
	}
	st.name = name
	return nil
}

// abort undoes a put that failed after its commit point: the rename to
// abort-* first, so that a crash meanwhile rolls back instead of forward;
// then a flush, so that the put stays undone once the error is answered.
func (st *staging) abort(ws *os.Root, plan *putPlan) {
	name := abortPrefix + strings.TrimPrefix(st.name, commitPrefix)
	if err := st.root.Rename(st.name, name); err != nil {
		log.Printf("put: marking %s aborted: %v", st.name, err)
	} else {
		st.name = name
	}
	rollBack(ws, st.files, plan)
	if err := unix.Syncfs(int(st.files.Fd())); err != nil {
		log.Printf("put: flushing the rollback: %v", err)
	}
}

// discard removes the put's directory. Only its name in the staging root
// matters: a crash before the removal is done removes it again at start.
func (st *staging) discard() {
	st.close()
	if err := st.root.RemoveAll(st.name); err != nil {
		log.Printf("put: removing %s: %v", st.name, err)
	}
	st.root.Close()
}

// close closes the put's directory, leaving it as it is.
func (st *staging) close() {
	if st.files != nil {
		st.files.Close()
	}
	if st.put != nil {
		st.put.Close()
	}
}

// applyPlan does the plan's steps in order; a step already done is skipped.
func applyPlan(ws *os.Root, files *os.File, plan *putPlan) error {
	dirs := parentDirs{ws: ws}
	defer dirs.close()
	for i, r := range plan.Removes {
		if applyHook != nil && applyHook(i) {
			return errCrashed
		}
		if err := removeEntry(&dirs, files, r); err != nil {
			return err
		}
	}
	for i, p := range plan.Places {
		if applyHook != nil && applyHook(len(plan.Removes)+i) {
			return errCrashed
		}
		if ino, _, err := lstatAt(files, p.Staged); err != nil || ino != p.Ino {
			continue // placed already (the name now holds what it replaced, or nothing)
		}
		parent, err := dirs.open(path.Dir(p.Path))
		if err != nil {
			return fmt.Errorf("%s: %w", path.Dir(p.Path), err)
		}
		base := path.Base(p.Path)
		err = unix.Renameat2(int(files.Fd()), p.Staged, int(parent.Fd()), base, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			// Replace a file or symlink; never swap a directory out.
			var isDir bool
			if _, isDir, err = lstatAt(parent, base); err == nil && isDir {
				err = unix.EISDIR
			} else if err == nil {
				err = unix.Renameat2(int(files.Fd()), p.Staged, int(parent.Fd()), base, unix.RENAME_EXCHANGE)
			}
		}
		if err != nil {
			return &os.PathError{Op: "rename", Path: p.Path, Err: err}
		}
	}
	if applyHook != nil && applyHook(len(plan.Removes)+len(plan.Places)) {
		return errCrashed
	}
	for _, d := range plan.Dirs {
		if err := ws.Chmod(d.Path, d.Mode); err != nil {
			return err
		}
		if err := ws.Chtimes(d.Path, d.Atime, d.Mtime); err != nil {
			return err
		}
	}
	return nil
}

// removeEntry does one removal step unless it is done: the entry moves
// into the put's directory under its staged name. An entry already gone
// is as the step wants it; a directory is never removed (one may have
// appeared since the put checked the path).
func removeEntry(dirs *parentDirs, files *os.File, r removeStep) error {
	if _, _, err := lstatAt(files, r.Staged); err == nil {
		return nil // removed already
	}
	parent, err := dirs.open(path.Dir(r.Path))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil // gone with its parent
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path.Dir(r.Path), err)
	}
	base := path.Base(r.Path)
	_, isDir, err := lstatAt(parent, base)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err == nil && isDir:
		err = unix.EISDIR
	case err == nil:
		err = unix.Renameat2(int(parent.Fd()), base, int(files.Fd()), r.Staged, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: r.Path, Err: err}
	}
	return nil
}

// rollBack puts back what applyPlan placed, newest first: an entry of the
// workspace that has a staged inode goes back to staging, and what it
// replaced (kept under the staged name by the exchange) comes back. Then
// the removed entries come back.
func rollBack(ws *os.Root, files *os.File, plan *putPlan) {
	unplace(ws, files, plan)
	// Fresh parents: undoing the places may have put back a symlink that
	// a removal's path leads through.
	dirs := parentDirs{ws: ws}
	defer dirs.close()
	for i := len(plan.Removes) - 1; i >= 0; i-- {
		r := plan.Removes[i]
		if _, _, err := lstatAt(files, r.Staged); err != nil {
			continue // not removed
		}
		parent, err := dirs.open(path.Dir(r.Path))
		if err == nil {
			err = unix.Renameat2(int(files.Fd()), r.Staged, int(parent.Fd()), path.Base(r.Path), unix.RENAME_NOREPLACE)
		}
		if err != nil {
			log.Printf("put: putting back removed %s: %v", r.Path, err)
		}
	}
}

// unplace undoes the place steps of rollBack.
func unplace(ws *os.Root, files *os.File, plan *putPlan) {
	dirs := parentDirs{ws: ws}
	defer dirs.close()
	for i := len(plan.Places) - 1; i >= 0; i-- {
		p := plan.Places[i]
		parent, err := dirs.open(path.Dir(p.Path))
		if err != nil {
			continue
		}
		base := path.Base(p.Path)
		if ino, _, err := lstatAt(parent, base); err != nil || ino != p.Ino {
			continue // not placed
		}
		flags := uint(unix.RENAME_NOREPLACE)
		if _, _, err := lstatAt(files, p.Staged); err == nil {
			flags = unix.RENAME_EXCHANGE
		}
		if err := unix.Renameat2(int(parent.Fd()), base, int(files.Fd()), p.Staged, flags); err != nil {
			log.Printf("put: putting back %s: %v", p.Path, err)
		}
	}
}

// recoverPuts finishes or undoes the puts a crash cut short. It runs at
// start, before the agent serves (no put can be running).
func recoverPuts(stagingRoot, workspaceRoot string) {
	entries, err := os.ReadDir(stagingRoot)
	if err != nil || len(entries) == 0 {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Printf("put recovery: %v", err)
		}
		return // the usual boot: nothing to do, not even a flush
	}
	root, err := os.OpenRoot(stagingRoot)
	if err != nil {
		log.Printf("put recovery: %v", err)
		return
	}
	defer root.Close()
	ws, err := os.OpenRoot(workspaceRoot)
	if err != nil {
		log.Printf("put recovery: %v", err)
	}
	for _, e := range entries {
		name := e.Name()
		committed, aborted := strings.HasPrefix(name, commitPrefix), strings.HasPrefix(name, abortPrefix)
		if (committed || aborted) && ws != nil {
			if err := recoverPut(root, ws, name, committed); err != nil {
				log.Printf("put recovery: %s: %v", name, err)
			} else {
				log.Printf("put recovery: %s %s", map[bool]string{true: "finished", false: "undone"}[committed], name)
			}
		}
		if err := root.RemoveAll(name); err != nil {
			log.Printf("put recovery: removing %s: %v", name, err)
		}
	}
	if ws != nil {
		ws.Close()
	}
	if err := syncfs(stagingRoot); err != nil {
		log.Printf("put recovery: flush: %v", err)
	}
}

// recoverPut rolls one committed put forward or one aborted put back.
func recoverPut(root, ws *os.Root, name string, forward bool) error {
	b, err := root.ReadFile(path.Join(name, planName))
	if err != nil {
		return err
	}
	var plan putPlan
	if err := json.Unmarshal(b, &plan); err != nil {
		return err
	}
	files, err := root.Open(name)
	if err != nil {
		return err
	}
	defer files.Close()
	if forward {
		return applyPlan(ws, files, &plan)
	}
	rollBack(ws, files, &plan)
	return nil
}

// parentDirs opens the places' parent directories through the workspace
// root (no symlink leads out of it), once each.
type parentDirs struct {
	ws     *os.Root
	opened map[string]*os.File
}

func (d *parentDirs) open(dir string) (*os.File, error) {
	if f, ok := d.opened[dir]; ok {
		return f, nil
	}
	f, err := d.ws.Open(dir)
	if err != nil {
		return nil, err
	}
	if d.opened == nil {
		d.opened = map[string]*os.File{}
	}
	d.opened[dir] = f
	return f, nil
}

func (d *parentDirs) close() {
	for _, f := range d.opened {
		f.Close()
	}
}

// lstatAt is the inode and kind of name in dir, not following a symlink.
func lstatAt(dir *os.File, name string) (ino uint64, isDir bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, false, err
	}
	return st.Ino, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// mountID is the mount f is on: a rename between two mounts fails (EXDEV).
func mountID(f *os.File) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, errors.New("the kernel does not report mount ids")
	}
	return stx.Mnt_id, nil
}

// Test hooks that stop a put as a crash would: commitHook once all is
// staged ("staged") and after the first flush ("synced"), applyHook before
// step i of the removals and then the places (i == len(removes) +
// len(places): before the directories' modes). Returning true stops there; the put's directory
// and the workspace are left as the crash would leave them.
var (
	commitHook func(phase string) bool
	applyHook  func(step int) bool
	errCrashed = errors.New("stopped by a test hook (a simulated crash)")
)
