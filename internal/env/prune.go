package env

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/fsutil"
)

// PrunedItem is one thing Prune removed.
type PrunedItem struct {
	Kind  string `json:"kind"` // "environment", "kernel", "base", "tmp", "log"; "run_snapshot" from pyro.Client
	Name  string `json:"name"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"` // disk usage freed
}

// PruneResult lists what Prune removed.
type PruneResult struct {
	Removed    []PrunedItem `json:"removed"`
	BytesFreed int64        `json:"bytes_freed"`
}

func (r *PruneResult) add(items ...PrunedItem) {
	for _, it := range items {
		r.Removed = append(r.Removed, it)
		r.BytesFreed += it.Bytes
	}
}

// Prune removes every installed version of environments not in use
// (inUse(name) false; nil means nothing is in use), damaged versions of any
// environment, kernels no remaining environment references (the kernel of
// the current config is kept: it takes minutes to build), base tarballs the
// catalog no longer names, stale build directories and kept build logs.
// Anything another process holds a lock on is skipped.
func (s *Store) Prune(ctx context.Context, inUse func(name string) bool) (PruneResult, error) {
	var res PruneResult
	if err := s.init(); err != nil {
		return res, err
	}
	if inUse == nil {
		inUse = func(string) bool { return false }
	}
	envRoot := filepath.Join(s.root, "environments")
	slugs, _ := os.ReadDir(envRoot)
	for _, sd := range slugs {
		if ctx.Err() != nil {
			return res, ctxError(ctx, "prune")
		}
		res.add(s.pruneEnvDir(filepath.Join(envRoot, sd.Name()), inUse)...)
	}
	if ctx.Err() != nil {
		return res, ctxError(ctx, "prune")
	}
	res.add(s.pruneKernels(ctx)...)
	res.add(s.pruneBases()...)
	res.add(s.cleanStaleTmp()...)
	res.add(s.pruneLogs()...)
	return res, nil
}

// pruneEnvDir handles environments/<slug>.
func (s *Store) pruneEnvDir(dir string, inUse func(string) bool) []PrunedItem {
	slugName := filepath.Base(dir)
	st, err := os.Lstat(dir)
	if err != nil {
		return nil
	}
	if !st.IsDir() {
		return s.removeItem("environment", slugName, dir)
	}
	unlock, ok := tryLock(s.lockPath("env-" + slugName))
	if !ok {
		return nil // being built or verified
	}
	defer unlock()
	name := slugName
	if e, known := entryForSlug(slugName); known {
		name = e.Name
	}
	versions, _ := os.ReadDir(dir)
	// An environment no longer in the catalog is still known by its manifests.
	for _, v := range versions {
		if m, err := readManifest(s.root, filepath.Join(dir, v.Name())); err == nil && validName(m.Name) {
			name = m.Name
			break
		}
	}
	used := inUse(name)
	var items []PrunedItem
	for _, v := range versions {
		p := filepath.Join(dir, v.Name())
		broken := true
		if v.IsDir() && validVersion(v.Name()) {
			if m, err := readManifest(s.root, p); err == nil && m.Version == v.Name() {
				broken = m.checkFiles() == errRootfsFiles
			}
		}
		if used && !broken {
			continue
		}
		items = append(items, s.removeItem("environment", name+" "+v.Name(), p)...)
	}
	os.Remove(dir) // only succeeds when empty
	return items
}

// pruneKernels removes kernels no remaining manifest references, except the
// one the current config would build (or, without the source package, the
// newest one, which Kernel() falls back to).
func (s *Store) pruneKernels(ctx context.Context) []PrunedItem {
	keep := map[string]bool{}
	if cur, _, err := s.currentKernelHash(ctx); err == nil {
		keep[cur] = true
	} else if k, ok := s.newestCachedKernel(); ok {
		keep[k.ConfigHash] = true
	}
	envRoot := filepath.Join(s.root, "environments")
	slugs, _ := os.ReadDir(envRoot)
	for _, sd := range slugs {
		versions, _ := os.ReadDir(filepath.Join(envRoot, sd.Name()))
		for _, v := range versions {
			if m, err := readManifest(s.root, filepath.Join(envRoot, sd.Name(), v.Name())); err == nil {
				keep[m.Kernel.ConfigHash] = true
			}
		}
	}
	kdir := filepath.Join(s.root, "kernels")
	entries, _ := os.ReadDir(kdir)
	var items []PrunedItem
	for _, k := range entries {
		if keep[k.Name()] {
			continue
		}
		unlock, ok := tryLock(s.lockPath("kernel-" + k.Name()))
		if !ok {
			continue
		}
		items = append(items, s.removeItem("kernel", k.Name(), filepath.Join(kdir, k.Name()))...)
		unlock()
	}
	return items
}

// pruneBases removes base tarballs (and stray files) the catalog does not name.
func (s *Store) pruneBases() []PrunedItem {
	keep := map[string]bool{}
	for _, e := range catalog {
		keep[e.baseKey()] = true
	}
	bdir := filepath.Join(s.root, "bases")
	entries, _ := os.ReadDir(bdir)
	var items []PrunedItem
	for _, f := range entries {
		stem := f.Name()
		for _, ext := range []string{".tar", ".json"} {
			stem = strings.TrimSuffix(stem, ext)
		}
		if keep[stem] {
			continue
		}
		if strings.HasPrefix(stem, ".tmp-") {
			// an interrupted atomic write of a record (or one in progress)
			if info, err := f.Info(); err != nil || time.Since(info.ModTime()) < tmpGrace {
				continue
			}
			items = append(items, s.removeItem("base", f.Name(), filepath.Join(bdir, f.Name()))...)
			continue
		}
		unlock, ok := tryLock(s.lockPath("base-" + stem))
		if !ok {
			continue
		}
		items = append(items, s.removeItem("base", f.Name(), filepath.Join(bdir, f.Name()))...)
		unlock()
	}
	return items
}

func (s *Store) pruneLogs() []PrunedItem {
	entries, _ := os.ReadDir(s.logsDir())
	var items []PrunedItem
	for _, f := range entries {
		items = append(items, s.removeItem("log", f.Name(), filepath.Join(s.logsDir(), f.Name()))...)
	}
	return items
}

func (s *Store) removeItem(kind, name, path string) []PrunedItem {
	size := fsutil.DiskUsage(path)
	if err := removeTree(path); err != nil {
		return nil
	}
	return []PrunedItem{{Kind: kind, Name: name, Path: path, Bytes: size}}
}
