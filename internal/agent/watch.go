//go:build linux

package agent

import (
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fsWatch tells, cheaply and exactly, whether anything a cached answer
// was taken from may have changed since: the login profile's files and the
// directories on PATH. Stat-ing them all on every exec cost ~2 ms under
// emulation. Instead every directory the kernel looks a name up in to
// reach them (each symlink followed, "/" included) is watched with
// inotify; events are queued by the kernel when the change is made, so one
// non-blocking read before a command starts sees every change completed
// before it. A mount table change (polled on /proc/self/mountinfo), a
// queue overflow, a removed watch, an event it cannot place or any failure
// to watch counts as a change: the caller then looks again the full way.
type fsWatch struct {
	fd int // inotify descriptor; -1 when not armed
	// mounts is /proc/self/mountinfo: POLLPRI once the mount table changed.
	// A raw descriptor: an *os.File would be in Go's epoll set, whose
	// polling consumes the event.
	mounts int
	// names are, per watch descriptor, the entry names whose events
	// matter; nil: every entry (a PATH directory, /etc/profile.d).
	names  map[int32]map[string]bool
	broken bool // something could not be watched or changed: stale until armed again
	// none: the kernel has no inotify (CONFIG_INOTIFY_USER): always stale,
	// and never tried again.
	none bool
	buf  []byte
}

// watchMask: entries created, removed, renamed, written or changed in mode;
// the directory itself removed or renamed. IN_ONLYDIR: only directories
// are ever watched (a file's events come through its directory's watch,
// which also sees it replaced).
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_MOVED_FROM |
	unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// maxDrain bounds the reads of one stale check (64 KiB each).
var maxDrain = 16 // a variable for the test

func newFSWatch() *fsWatch { return &fsWatch{fd: -1, mounts: -1} }

// stale reports whether anything watched may have changed since arm (or
// nothing is armed); it drains the queued events.
func (w *fsWatch) stale() bool {
	if w.fd < 0 || w.broken {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(w.mounts), Events: unix.POLLPRI}}
	if n, err := unix.Poll(fds, 0); err != nil || (n > 0 && fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0) {
		w.broken = true
		return true
	}
	// A command making events as fast as they are read (files written in
	// $HOME in a loop) must not hold a plan up: after maxDrain reads the
	// watch gives up and the caller looks the full way.
	for reads := 0; ; reads++ {
		if reads == maxDrain {
			w.broken = true
			return true
		}
		n, err := unix.Read(w.fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return w.broken
		}
		if err != nil || n <= 0 {
			w.broken = true
			return true
		}
		if w.relevant(w.buf[:n]) {
			w.broken = true // the rest goes with the descriptor at the next arm
			return true
		}
	}
}

// relevant reports whether any event in buf concerns a watched name.
func (w *fsWatch) relevant(buf []byte) bool {
	found := false
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+unix.SizeofInotifyEvent : min(len(buf), off+unix.SizeofInotifyEvent+int(ev.Len))]
		off += unix.SizeofInotifyEvent + int(ev.Len)
		name := strings.TrimRight(string(nameBytes), "\x00")
		names, known := w.names[ev.Wd]
		switch {
		case ev.Mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED|unix.IN_UNMOUNT) != 0, !known, name == "":
			found = true // lost events, a watch gone, the directory itself
		case names == nil || names[name]:
			found = true
		}
	}
	return found
}

// arm drops the old watch and watches targets from now on: each path's
// resolution, and for dirs also every entry of the directory.
func (w *fsWatch) arm(files, dirs []string) {
	w.close()
	w.broken = false
	w.names = map[int32]map[string]bool{}
	if w.buf == nil {
		w.buf = make([]byte, 64<<10)
	}
	if w.none {
		w.broken = true
		return
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		w.broken, w.none = true, err == unix.ENOSYS
		return
	}
	w.fd = fd
	if w.mounts, err = unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		w.broken = true
		return
	}
	w.add(files, dirs)
}

// add watches more paths on an armed watch.
func (w *fsWatch) add(files, dirs []string) {
	if w.fd < 0 {
		return
	}
	set := lookups{}
	for _, f := range files {
		set.resolve(f, false)
	}
	for _, d := range dirs {
		set.resolve(d, true)
	}
	for dir, names := range set {
		wd, err := unix.InotifyAddWatch(w.fd, dir, watchMask)
		if err != nil {
			w.broken = true
			continue
		}
		// One directory reached by two paths (a bind mount) has one wd.
		old, seen := w.names[int32(wd)]
		if names == nil || (seen && old == nil) {
			w.names[int32(wd)] = nil
			continue
		}
		if !seen {
			old = map[string]bool{}
			w.names[int32(wd)] = old
		}
		for n := range names {
			old[n] = true
		}
	}
}

func (w *fsWatch) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
	if w.mounts >= 0 {
		unix.Close(w.mounts)
		w.mounts = -1
	}
}

// lookups maps a directory to the entry names looked up in it (nil: all).
type lookups map[string]map[string]bool

// maxHops bounds symlinks followed, as the kernel's 40.
const maxHops = 40

// resolve records every directory entry the kernel consults to reach p,
// following symlinks; a missing component ends the walk (its directory's
// watch sees it appear). whole: p is a directory whose every entry
// matters.
func (l lookups) resolve(p string, whole bool) {
	dir := "/"
	rest := strings.Split(p, "/")
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			dir = filepath.Dir(dir)
			continue
		}
		l.name(dir, name)
		full := filepath.Join(dir, name)
		fi, err := os.Lstat(full)
		if err != nil {
			return
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(full)
			if hops++; err != nil || hops > maxHops {
				return
			}
			if filepath.IsAbs(target) {
				dir = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return
		}
		dir = full
	}
	if whole {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			l[dir] = nil
		}
	}
}

func (l lookups) name(dir, name string) {
	names, ok := l[dir]
	if ok && names == nil {
		return
	}
	if !ok {
		names = map[string]bool{}
		l[dir] = names
	}
	names[name] = true
}
