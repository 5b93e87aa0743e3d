package env

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/fsutil"
)

// Every build works in its own directory under <cache>/tmp, holding a flock
// on <dir>/.lock for its whole life. Results are renamed out of it only
// when complete, so nothing under tmp/ is ever part of a valid install.

// tmpGrace covers the instant between creating a build dir and locking it.
const tmpGrace = time.Minute

// tmpMaxAge: a build dir without any lock file this old is garbage.
const tmpMaxAge = time.Hour

type buildDir struct {
	dir    string
	unlock func()
}

func (s *Store) tmpDir() string { return filepath.Join(s.root, "tmp") }

// newToolBuild makes a build dir and a runner for the tools of one build,
// whose temp files stay inside the dir; done closes the runner and removes
// the dir.
func (s *Store) newToolBuild(ctx context.Context, prefix, what string) (*buildDir, *runner, func(), error) {
	b, err := s.newBuildDir(ctx, prefix)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := newRunner(what, b.dir, s.logsDir(), toolEnv("TMPDIR="+b.dir))
	if err != nil {
		b.remove()
		return nil, nil, nil, err
	}
	return b, r, func() { r.close(); b.remove() }, nil
}

func (s *Store) newBuildDir(ctx context.Context, prefix string) (*buildDir, error) {
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return nil, buildErr(err, "creating %s", s.tmpDir())
	}
	dir, err := os.MkdirTemp(s.tmpDir(), prefix+"-")
	if err != nil {
		return nil, buildErr(err, "creating build directory")
	}
	unlock, err := acquireLock(ctx, filepath.Join(dir, ".lock"), nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &buildDir{dir: dir, unlock: unlock}, nil
}

// remove deletes the build tree, then drops the lock.
func (b *buildDir) remove() {
	removeTree(b.dir)
	b.unlock()
}

// staleTmp lists build dirs whose owner is gone: their lock is free (and
// they are past the creation grace), or they have no lock and are older
// than tmpMaxAge. A held lock always wins: its owner is alive.
func (s *Store) staleTmp() []string {
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil
	}
	var out []string
	now := time.Now()
	for _, e := range entries {
		p := filepath.Join(s.tmpDir(), e.Name())
		info, err := os.Lstat(p)
		if err != nil {
			continue
		}
		age := now.Sub(info.ModTime())
		if !info.IsDir() {
			if age > tmpGrace {
				out = append(out, p)
			}
			continue
		}
		lock := filepath.Join(p, ".lock")
		if _, err := os.Stat(lock); err != nil {
			if age > tmpMaxAge {
				out = append(out, p)
			}
			continue
		}
		if age > tmpGrace && !isLockHeld(lock) {
			out = append(out, p)
		}
	}
	return out
}

// cleanStaleTmp removes stale build dirs and returns what it removed.
func (s *Store) cleanStaleTmp() []PrunedItem {
	var items []PrunedItem
	for _, p := range s.staleTmp() {
		lock := filepath.Join(p, ".lock")
		var unlock func()
		if _, err := os.Stat(lock); err == nil {
			var ok bool
			if unlock, ok = tryLock(lock); !ok {
				continue // taken meanwhile
			}
		}
		size := fsutil.DiskUsage(p)
		err := removeTree(p)
		if unlock != nil {
			unlock()
		}
		if err == nil {
			items = append(items, PrunedItem{Kind: "tmp", Name: filepath.Base(p), Path: p, Bytes: size})
		}
	}
	return items
}
