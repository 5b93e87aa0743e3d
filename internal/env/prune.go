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
	Kind  string `json:"kind"` // "environment", "image", "build", "kernel", "base", "tmp", "log"; "run_snapshot" from pyro.Client
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
// (inUse(name, rootfsPath) false; nil means nothing is in use; catalog
// environments are asked by name with an empty path, image environments
// per version with the path of their image), damaged versions of any
// environment, kernels no remaining environment references (the kernel of
// the current config is kept: it takes minutes to build), base tarballs the
// catalog no longer names, references and layer blobs no remaining image
// uses, stale build directories and kept build logs. Anything another
// process holds a lock on is skipped.
func (s *Store) Prune(ctx context.Context, inUse func(name, rootfsPath string) bool) (PruneResult, error) {
	var res PruneResult
	if err := s.init(); err != nil {
		return res, err
	}
	if inUse == nil {
		inUse = func(string, string) bool { return false }
	}
	envRoot := filepath.Join(s.root, "environments")
	slugs, _ := os.ReadDir(envRoot)
	for _, sd := range slugs {
		if ctx.Err() != nil {
			return res, ctxError(ctx, "prune")
		}
		res.add(s.pruneEnvDir(filepath.Join(envRoot, sd.Name()), func(n string) bool { return inUse(n, "") })...)
	}
	res.add(s.pruneImages(inUse)...)
	res.add(s.pruneBuilds(inUse)...)
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
	// Images and custom environments boot a kernel too; one pulled as a
	// published artifact brings its own.
	for _, envRoot := range []string{filepath.Join(s.root, "environments"), s.imagesDir(), filepath.Join(s.root, "builds")} {
		slugs, _ := os.ReadDir(envRoot)
		for _, sd := range slugs {
			versions, _ := os.ReadDir(filepath.Join(envRoot, sd.Name()))
			for _, v := range versions {
				if m, err := readManifest(s.root, filepath.Join(envRoot, sd.Name(), v.Name())); err == nil {
					keep[m.Kernel.ConfigHash] = true
				}
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

// pruneImages removes image environment versions not in use (and damaged
// ones), then references to images no longer installed and layer blobs no
// remaining image lists. Blobs are only pruned when no pull is running: a
// pull holds the blobs lock shared from its first fetch to its install.
func (s *Store) pruneImages(inUse func(name, rootfsPath string) bool) []PrunedItem {
	var items []PrunedItem
	dirs, _ := os.ReadDir(s.imagesDir())
	for _, d := range dirs {
		h := d.Name()
		if digestHex("sha256:"+h) == "" {
			items = append(items, s.removeItem("image", h, filepath.Join(s.imagesDir(), h))...)
			continue
		}
		unlock, ok := tryLock(s.imageLockPath(h))
		if !ok {
			continue
		}
		versions, _ := os.ReadDir(filepath.Join(s.imagesDir(), h))
		for _, v := range versions {
			p := filepath.Join(s.imagesDir(), h, v.Name())
			m, err := readManifest(s.root, p)
			broken := err != nil || !imageVersionRE().MatchString(v.Name()) || m.checkFiles() == errRootfsFiles
			if !broken && inUse(m.Name, m.Rootfs.Path) {
				continue
			}
			label := h[:12] + " " + v.Name()
			if m != nil {
				label = m.Name + " " + v.Name()
			}
			items = append(items, s.removeItem("image", label, p)...)
		}
		os.Remove(filepath.Join(s.imagesDir(), h)) // only succeeds when empty
		unlock()
	}

	refsDir := filepath.Join(s.root, "refs")
	refs, _ := os.ReadDir(refsDir)
	for _, r := range refs {
		var rec refRecord
		p := filepath.Join(refsDir, r.Name())
		if readJSON(p, &rec) == nil && digestHex(rec.Digest) != "" {
			if _, err := os.Stat(filepath.Join(s.imagesDir(), digestHex(rec.Digest))); err == nil {
				continue
			}
			unlock, ok := tryLock(s.lockPath("ref-" + refKey(rec.Reference)))
			if !ok {
				continue
			}
			items = append(items, s.removeItem("ref", rec.Reference, p)...)
			unlock()
			continue
		}
		items = append(items, s.removeItem("ref", r.Name(), p)...)
	}

	unlock, ok := tryLock(s.lockPath("blobs"))
	if !ok {
		return items
	}
	defer unlock()
	used := map[string]bool{}
	dirs, _ = os.ReadDir(s.imagesDir())
	for _, d := range dirs {
		versions, _ := os.ReadDir(filepath.Join(s.imagesDir(), d.Name()))
		for _, v := range versions {
			if m, err := readManifest(s.root, filepath.Join(s.imagesDir(), d.Name(), v.Name())); err == nil && m.Image != nil {
				for _, l := range m.Image.Layers {
					used[digestHex(l.Digest)] = true
				}
			}
		}
	}
	blobDir := filepath.Join(s.blobs().Dir, "sha256")
	blobs, _ := os.ReadDir(blobDir)
	for _, b := range blobs {
		if !used[b.Name()] {
			items = append(items, s.removeItem("blob", "sha256:"+b.Name(), filepath.Join(blobDir, b.Name()))...)
		}
	}
	return items
}
