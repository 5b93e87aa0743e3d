package supervisor

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// homeWatch tells when the workspace directory goes away (removed or moved
// by hand, or by a delete whose kill did not reach this process): nobody can
// use the VM then, nor ever clean it up, so the supervisor ends it at once
// instead of running on as an orphan.
//
// inotify wakes it only on such events. It watches the parent: the
// directory's own IN_DELETE_SELF comes only when its last reference goes,
// and the files QEMU and the supervisor keep open in it hold one.
type homeWatch struct {
	gone chan struct{} // closed when the directory is gone
	f    *os.File
	done chan struct{}
}

const homeEvents = unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// watchHome watches dir; onGone runs once, from the watch's goroutine, when
// dir (or its parent) is deleted or moved, or at once if dir is missing.
func watchHome(dir string, onGone func()) (*homeWatch, error) {
	w := &homeWatch{gone: make(chan struct{}), done: make(chan struct{})}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	// Non-blocking, so the runtime's poller serves it and Close wakes Read.
	w.f = os.NewFile(uintptr(fd), "inotify")
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(dir), homeEvents); err != nil && !errors.Is(err, unix.ENOENT) {
		w.f.Close()
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	// After the watch: a removal between the two is seen by one or the other.
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		w.f.Close()
		close(w.gone)
		close(w.done)
		onGone()
		return w, nil
	}
	name := []byte(filepath.Base(dir))
	go func() {
		defer close(w.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := w.f.Read(buf)
			if err != nil {
				return // the Close of stop
			}
			if homeGone(buf[:n], name) {
				close(w.gone)
				onGone()
				return
			}
		}
	}()
	return w, nil
}

// homeGone reports whether the events in buf say that the entry name left
// the watched parent, or that the parent itself went.
func homeGone(buf, name []byte) bool {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return false
		}
		if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
			return true
		}
		evName := bytes.TrimRight(buf[unix.SizeofInotifyEvent:end], "\x00")
		if ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 && bytes.Equal(evName, name) {
			return true
		}
		buf = buf[end:]
	}
	return false
}

// stop ends the watch and waits for its goroutine.
func (w *homeWatch) stop() {
	w.f.Close()
	<-w.done
}
