//go:build linux

package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// journal records what one put_archive changed under a root, so that a put
// that fails part-way leaves the tree as it found it: entries it created are
// removed, entries it replaced are put back. A replaced entry is renamed
// aside (same directory, so the rename cannot fail for want of space) and
// only removed once the whole archive is in. A guest crash mid-put can leave
// a `.pyro-undo-*` entry behind; nothing else is lost.
type journal struct {
	root  *os.Root
	steps []undoStep
}

type undoStep struct {
	name   string
	backup string // "" when name was created by this put
}

const backupPrefix = ".pyro-undo-"

func (j *journal) created(name string) { j.steps = append(j.steps, undoStep{name: name}) }

// moveAside renames the entry at name out of the way.
func (j *journal) moveAside(name string) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	backup := filepath.Join(filepath.Dir(name), backupPrefix+hex.EncodeToString(b[:]))
	if err := j.root.Rename(name, backup); err != nil {
		return err
	}
	j.steps = append(j.steps, undoStep{name: name, backup: backup})
	return nil
}

// mkdirAll creates the missing directories of name one by one, recording
// each. Symlinks to directories inside the root are followed, as MkdirAll does.
func (j *journal) mkdirAll(name string, perm fs.FileMode) error {
	if name == "." || name == "" {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(filepath.Clean(name), string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := j.root.Stat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return &os.PathError{Op: "mkdir", Path: cur, Err: syscall.ENOTDIR}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := j.root.Mkdir(cur, perm); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // made meanwhile by someone else: not ours to remove
			}
			return err
		}
		j.created(cur)
	}
	return nil
}

// undo reverts the recorded steps, newest first. It is best effort: an
// entry someone else changed meanwhile is left as it is.
func (j *journal) undo() {
	for i := len(j.steps) - 1; i >= 0; i-- {
		s := j.steps[i]
		if s.backup == "" {
			_ = j.root.Remove(s.name) // a directory only once it is empty again
			continue
		}
		_ = j.root.Rename(s.backup, s.name)
	}
	j.steps = nil
}

// commit drops the replaced entries' backups.
func (j *journal) commit() {
	for _, s := range j.steps {
		if s.backup != "" {
			_ = j.root.RemoveAll(s.backup)
		}
	}
	j.steps = nil
}
