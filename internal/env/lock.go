package env

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Lock files live in <cache>/locks and are never deleted: removing a lock
// file while another process waits on it would let two owners in.

const lockRetry = 200 * time.Millisecond

// acquireLock takes an exclusive flock on path, waiting until ctx is done.
// waiting is called once if the lock is busy (to tell the user why we wait).
func acquireLock(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, buildErr(err, "creating lock directory")
	}
	l := flock.New(path)
	ok, err := l.TryLock()
	if err != nil {
		return nil, buildErr(err, "locking %s", path)
	}
	if !ok {
		if waiting != nil {
			waiting()
		}
		ok, err = l.TryLockContext(ctx, lockRetry)
		if ctx.Err() != nil {
			l.Close()
			return nil, ctxError(ctx, "waiting for "+filepath.Base(path))
		}
		if err != nil || !ok {
			l.Close()
			return nil, buildErr(err, "locking %s", path)
		}
	}
	return func() { l.Unlock(); l.Close() }, nil
}

// acquireSharedLock takes a shared flock on path, waiting until ctx is done.
func acquireSharedLock(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, buildErr(err, "creating lock directory")
	}
	l := flock.New(path)
	ok, err := l.TryRLockContext(ctx, lockRetry)
	if ctx.Err() != nil {
		l.Close()
		return nil, ctxError(ctx, "waiting for "+filepath.Base(path))
	}
	if err != nil || !ok {
		l.Close()
		return nil, buildErr(err, "locking %s", path)
	}
	return func() { l.Unlock(); l.Close() }, nil
}

// tryLock takes the lock only if it is free right now.
func tryLock(path string) (unlock func(), ok bool) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false
	}
	l := flock.New(path)
	got, err := l.TryLock()
	if err != nil || !got {
		l.Close()
		return nil, false
	}
	return func() { l.Unlock(); l.Close() }, true
}

// isLockHeld reports whether some process (this one included, through another
// file description) holds the flock on path. A missing file is not held.
func isLockHeld(path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	unlock, ok := tryLock(path)
	if ok {
		unlock()
		return false
	}
	return true
}

func buildErr(cause error, format string, args ...any) error {
	return errdefs.Wrap(cause, errdefs.ErrInternal, errdefs.CodeEnvironmentBuild, format, args...)
}
