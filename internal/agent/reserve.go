//go:build linux

package agent

import (
	"errors"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A put needs a few blocks of its own even when it writes nothing new: its
// staging directory, its plan, room in that directory for the entries it
// removes. So that a patch that only deletes still works on a full
// workspace disk (it frees space), the agent keeps a small reserve file
// next to the staging root, made at boot. A put that runs into ENOSPC
// while it stages, commits or applies gives the reserve up and tries that
// step once more; the reserve is made again after the put when there is
// room.

// reserveSize is what the reserve holds: the plan and directory blocks of
// a put removing thousands of files.
const reserveSize = 1 << 20

// reserve is the reserve file of one staging root.
type reserve struct{ path string }

func newReserve(stagingRoot string) *reserve {
	return &reserve{path: filepath.Join(filepath.Dir(stagingRoot), "reserve")}
}

// retry runs step, and once more after giving the reserve up when step
// ran out of space and the reserve was there.
func (r *reserve) retry(step func() error) error {
	err := step()
	if isNoSpace(err) && r.free() {
		err = step()
	}
	return err
}

// free removes the reserve; it reports whether there was one.
func (r *reserve) free() bool {
	if err := os.Remove(r.path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Printf("put: giving up the space reserve: %v", err)
		}
		return false
	}
	return true
}

// restore makes the reserve again after a put when it is missing: given up
// by this put, or by an earlier one on a disk that was still full then.
func (r *reserve) restore() { makeReserve(r.path) }

// makeReserve creates the reserve file when it is missing and there is
// room for it (a full disk gets it back after a later put).
func makeReserve(path string) {
	var f *os.File
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	if err == nil {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if errors.Is(err, fs.ErrExist) {
		return
	}
	if err == nil {
		err = unix.Fallocate(int(f.Fd()), 0, 0, reserveSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}
	if err != nil && !isNoSpace(err) {
		log.Printf("put: making the space reserve: %v", err)
	}
}
