package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// Custom environments ("pyro env build NAME --from BASE --run CMD...") live
// beside the catalog's and the images':
//
//	builds/<key hex>/<version>/rootfs.ext4, manifest.json (written last)
//	built/<name key>.json      name -> definition and key (name key: 32 hex of sha256(name))
//
// key = sha256 of the definition: the base's root filesystem digest (which
// covers its packages or layers, pyro's files and the agent), the steps in
// order, network and disk size. An unchanged definition on an unchanged base
// is therefore a cache hit; a changed step, or a base rebuilt with a new
// agent, is a new key. version = "<first 12 hex of the key>.<first 8 hex of
// the agent sha256>", "-N" appended for a forced rebuild. As everywhere, a
// version directory is never rewritten and appears by one rename.
//
// The image is the base image with the steps' writes: the runner (the
// client, which owns VMs) boots the base over a copy-on-write layer, runs
// the steps and leaves the flattened raw image; e2fsck then replays its
// journal (the guest powered off without unmounting) before it is hashed.

// SourceBuild marks an environment made by Build.
const SourceBuild = "build"

// buildRevision is bumped whenever what Build does to the image changes.
const buildRevision = 1

// MaxBuildSteps bounds a definition.
const MaxBuildSteps = 100

// BuildDef defines a custom environment.
type BuildDef struct {
	From     string   `json:"from"`              // catalog name, image reference or built environment
	Steps    []string `json:"steps"`             // shell commands, run in order by /bin/sh -lc as root in /
	Network  bool     `json:"network,omitempty"` // egress for the steps
	DiskSize int64    `json:"disk_size,omitempty"`
	// StepTimeoutSeconds bounds each step; VCPUCount and MemMiB size the
	// build's machine (none is part of the key).
	StepTimeoutSeconds int `json:"step_timeout_seconds,omitempty"`
	VCPUCount          int `json:"vcpu_count,omitempty"`
	MemMiB             int `json:"mem_mib,omitempty"`
	// EnvFile is the environment file the definition came from (shown only).
	EnvFile string `json:"env_file,omitempty"`
}

// BuildInfo is what a built environment's manifest keeps of its making.
type BuildInfo struct {
	BuildDef
	BaseVersion      string `json:"base_version"`
	BaseRootfsSHA256 string `json:"base_rootfs_sha256"`
	DurationMs       int64  `json:"duration_ms"`
}

// BuildRunner runs the steps: it boots the base's kernel over the disk
// image backing (the base image, or a grown copy of it; never written),
// runs the steps, and writes the resulting disk, flattened and of the same
// size, as the raw image at image. scratch is a directory for its own
// files, removed with the build.
type BuildRunner func(ctx context.Context, backing, scratch, image string) error

var (
	builtNameRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}(:[A-Za-z0-9._-]{1,64})?$`)
	})
	buildVerRE = imageVersionRE
)

// ValidateBuildName checks a custom environment's name: lower-case letters,
// digits, '.', '_', '-', an optional ":tag", no '/' (so it never reads as
// a registry path), and not a catalog name.
func ValidateBuildName(name string) error {
	switch {
	case IsCatalogName(name):
		return errdefs.InvalidArgument("name", "%q is a catalog environment: give the custom environment its own name, e.g. \"myproject\"", name)
	case !builtNameRE().MatchString(name):
		return errdefs.InvalidArgument("name", "%q is not a valid environment name: lower-case letters, digits, '.', '_' and '-' (at most 63), optionally \":TAG\"; no '/'", name)
	}
	return nil
}

// Validate checks a definition.
func (d BuildDef) Validate() error {
	switch {
	case strings.TrimSpace(d.From) == "":
		return errdefs.InvalidArgument("from", "is required: the base environment (a catalog name such as debian:12, an image reference, or an environment built earlier)")
	case len(d.Steps) == 0:
		return errdefs.InvalidArgument("steps", "is empty: give at least one command to run")
	case len(d.Steps) > MaxBuildSteps:
		return errdefs.InvalidArgument("steps", "has %d commands, at most %d are allowed: join some with &&", len(d.Steps), MaxBuildSteps)
	case d.DiskSize < 0:
		return errdefs.InvalidArgument("disk_size", "%d is negative", d.DiskSize)
	}
	for i, s := range d.Steps {
		if strings.TrimSpace(s) == "" {
			return errdefs.InvalidArgument("steps", "step %d is empty", i+1)
		}
	}
	return nil
}

// BuildKey is the cache key of def over base: hex sha256.
func BuildKey(def BuildDef, base *Manifest) string {
	b, _ := json.Marshal(struct {
		Revision int      `json:"revision"`
		Base     string   `json:"base"`
		Steps    []string `json:"steps"`
		Network  bool     `json:"network"`
		DiskSize int64    `json:"disk_size"`
	}{buildRevision, base.Rootfs.SHA256, def.Steps, def.Network, roundUp(def.DiskSize, 1<<20)})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type builtRecord struct {
	Name      string    `json:"name"`
	Digest    string    `json:"digest"` // "sha256:<key>"
	Def       BuildDef  `json:"definition"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (s *Store) buildsDir() string { return filepath.Join(s.root, "builds") }
func (s *Store) builtPath(name string) string {
	return filepath.Join(s.root, "built", refKey(name)+".json")
}
func (s *Store) buildLockPath(key string) string { return s.lockPath("build-" + key[:16]) }

func (s *Store) readBuilt(name string) (builtRecord, bool) {
	var rec builtRecord
	if s.init() != nil || !builtNameRE().MatchString(name) {
		return rec, false
	}
	if err := readJSON(s.builtPath(name), &rec); err != nil || rec.Name != name || digestHex(rec.Digest) == "" {
		return rec, false
	}
	return rec, true
}

// BuiltDefinition returns the recorded definition of a custom environment
// (also when its image is gone or stale, so it can be built again).
func (s *Store) BuiltDefinition(name string) (BuildDef, bool) {
	rec, ok := s.readBuilt(name)
	return rec.Def, ok
}

// scanBuild reads every version of build key h, newest first.
func (s *Store) scanBuild(h string) []install {
	return s.scanVersions(filepath.Join(s.buildsDir(), h), h, buildVerRE(), func(m *Manifest) bool {
		return m.Source == SourceBuild && m.Build != nil
	})
}

// pickBuild chooses the newest usable version of build h; agentSum ""
// accepts any agent.
func (s *Store) pickBuild(h, agentSum string) (*install, string) {
	return pickNewest(s.scanBuild(h), agentSum, "is not built", "built", nil)
}

// getBuilt is Get for a custom environment's name.
func (s *Store) getBuilt(ctx context.Context, rec builtRecord, anyAgent bool) (*install, error) {
	ag, _, err := s.agent(ctx)
	if err != nil && !anyAgent {
		return nil, err
	}
	in, why := s.pickBuild(digestHex(rec.Digest), ag.sha256)
	if in == nil && anyAgent {
		in, _ = s.pickBuild(digestHex(rec.Digest), "")
	}
	if in == nil {
		return nil, withListHint(errdefs.New(errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing, "custom environment %q %s", rec.Name, why).
			WithNext(": %s", "pyro env build --force "+rec.Name+" --from "+rec.Def.From+" --run ...", ""))
	}
	return in, nil
}

// Build installs the custom environment name from def over base: a cache
// hit when an install of the same key exists (unless force), else run
// boots the base over an overlay in a build directory and runs the steps,
// and the result becomes a new version. Concurrent builds of one name or
// one key wait for each other; a failed or interrupted build leaves
// nothing but its build directory, which the next build removes.
func (s *Store) Build(ctx context.Context, name string, def BuildDef, base *Environment, force bool, run BuildRunner) (_ *Environment, cached bool, _ error) {
	if err := ValidateBuildName(name); err != nil {
		return nil, false, err
	}
	if err := def.Validate(); err != nil {
		return nil, false, err
	}
	ag, err := s.readyToBuild(ctx)
	if err != nil {
		return nil, false, err
	}
	unlockName, err := acquireLock(ctx, s.lockPath("built-"+refKey(name)), func() {
		s.progress(ctx, Event{Stage: "build", Message: "waiting for another pyro process building " + name})
	})
	if err != nil {
		return nil, false, err
	}
	defer unlockName()
	key := BuildKey(def, base.Manifest)
	unlock, err := acquireLock(ctx, s.buildLockPath(key), func() {
		s.progress(ctx, Event{Stage: "build", Message: "waiting for another pyro process building the same definition"})
	})
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if !force {
		if in, _ := s.pickBuild(key, ag.sha256); in != nil {
			if err := s.writeBuilt(name, key, def); err != nil {
				return nil, false, buildErr(err, "recording %s", name)
			}
			return in.environment(), true, nil
		}
	}
	if base.Manifest.AgentSHA256 != ag.sha256 {
		return nil, false, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeEnvironmentBuild,
			"the base %s was made with another guest agent", def.From).WithNext(": %s first", "pyro env pull "+def.From, "")
	}
	// The base's own lock, shared: prune skips it while the steps run over it.
	unlockBase, err := acquireSharedLock(ctx, s.baseLock(base.Manifest))
	if err != nil {
		return nil, false, err
	}
	defer unlockBase()
	env, err := s.buildCustom(ctx, name, key, def, base, ag, run)
	if err != nil {
		return nil, false, err
	}
	if err := s.writeBuilt(name, key, def); err != nil {
		return nil, false, buildErr(err, "recording %s", name)
	}
	return env, false, nil
}

// baseLock is the lock prune takes before removing the base's install.
func (s *Store) baseLock(m *Manifest) string {
	switch m.Source {
	case SourceOCI:
		return s.imageLockPath(digestHex(m.Digest))
	case SourceBuild:
		return s.buildLockPath(digestHex(m.Digest))
	}
	return s.lockPath("env-" + slug(m.Name))
}

func (s *Store) writeBuilt(name, key string, def BuildDef) error {
	if rec, ok := s.readBuilt(name); ok && digestHex(rec.Digest) == key && rec.Def.EnvFile == def.EnvFile {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.builtPath(name)), 0o755); err != nil {
		return err
	}
	return fsutil.WriteJSONAtomic(s.builtPath(name), builtRecord{Name: name, Digest: "sha256:" + key, Def: def, UpdatedAt: time.Now().UTC()}, 0o644)
}

func (s *Store) buildCustom(ctx context.Context, name, key string, def BuildDef, base *Environment, ag agentInfo, run BuildRunner) (*Environment, error) {
	what := "build " + name
	if err := checkTools(hostTool{Cmd: "e2fsck", Package: "e2fsprogs"}); err != nil {
		return nil, err
	}
	start := time.Now()
	b, r, done, err := s.newToolBuild(ctx, "build", what)
	if err != nil {
		return nil, err
	}
	defer done()
	work := base.RootfsPath
	bm := base.Manifest
	size := bm.Rootfs.Size
	if def.DiskSize > 0 {
		if size, err = s.growCopy(ctx, r, what, base.RootfsPath, b.dir, def.DiskSize); err != nil {
			return nil, err
		}
		work = filepath.Join(b.dir, "base.ext4")
	}
	out, scratch := filepath.Join(b.dir, "out"), filepath.Join(b.dir, "vm")
	for _, d := range []string{out, scratch} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, buildErr(err, "%s", what)
		}
	}
	img := filepath.Join(out, rootfsFile)
	if err := run(ctx, work, scratch, img); err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, what)
		}
		return nil, err
	}
	if err := fsck(ctx, r, img); err != nil {
		return nil, err
	}
	if fileSize(img) != size {
		return nil, buildErr(fmt.Errorf("image is %d bytes, want %d", fileSize(img), size), "%s", what)
	}
	if err := fsutil.SyncFile(img); err != nil {
		return nil, buildErr(err, "%s: syncing image", what)
	}
	if err := os.Chmod(img, 0o444); err != nil {
		return nil, buildErr(err, "%s", what)
	}
	s.progress(ctx, Event{Stage: "build", Message: "hashing image"})
	rsum, rsize, err := sha256File(ctx, img, func(done, total int64) {
		s.progress(ctx, Event{Stage: "build", Message: "hashing image", Done: done, Total: total})
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, what)
		}
		return nil, buildErr(err, "%s: hashing image", what)
	}
	version := newVersion(s.buildsDir(), key, ag.sha256)
	final := filepath.Join(s.buildsDir(), key, version)
	m := &Manifest{
		SchemaVersion: manifestSchemaVersion,
		Name:          name,
		Version:       version,
		Description:   fmt.Sprintf("built from %s with %d steps", def.From, len(def.Steps)),
		CreatedAt:     time.Now().UTC(),
		Kernel:        bm.Kernel,
		Rootfs:        RootfsInfo{Path: filepath.Join(final, rootfsFile), SHA256: rsum, Size: rsize, DiskUsage: fsutil.DiskUsage(img)},
		AgentSHA256:   ag.sha256,
		Packages:      []string{},
		ImageRevision: bm.ImageRevision,
		Source:        SourceBuild,
		Digest:        "sha256:" + key,
		Image:         bm.Image, // the base image's config (Env, WorkingDir, User) still applies
		Build: &BuildInfo{BuildDef: def, BaseVersion: bm.Version, BaseRootfsSHA256: bm.Rootfs.SHA256,
			DurationMs: time.Since(start).Milliseconds()},
	}
	if bm.Source == SourceOCI || bm.Source == SourceBuild {
		m.Reference = bm.Reference
	}
	if err := writeManifest(s.root, out, m); err != nil {
		return nil, buildErr(err, "%s: writing manifest", what)
	}
	if err := fsutil.SyncDir(out); err != nil {
		return nil, buildErr(err, "%s", what)
	}
	if err := s.replaceDir(out, final, b.dir); err != nil {
		return nil, buildErr(err, "%s: installing %s", what, final)
	}
	s.progress(ctx, Event{Stage: "build", Message: fmt.Sprintf("%s ready in %s", name, time.Since(start).Round(100*time.Millisecond))})
	return &Environment{Manifest: m, Dir: final, KernelPath: m.Kernel.Path, RootfsPath: m.Rootfs.Path}, nil
}

// growCopy makes a sparse copy of the base image in dir and grows its
// filesystem to size bytes, so the steps already have the room.
func (s *Store) growCopy(ctx context.Context, r *runner, what, src, dir string, size int64) (int64, error) {
	size = roundUp(size, 1<<20)
	if size < fileSize(src) {
		return 0, errdefs.InvalidArgument("disk_size", "%d MiB is smaller than the base's image (%d MiB): give at least that much", size>>20, fileSize(src)>>20)
	}
	dst := filepath.Join(dir, "base.ext4")
	if err := r.run(ctx, dir, nil, "cp", "--sparse=always", "--reflink=auto", src, dst); err != nil {
		return 0, err
	}
	if err := os.Chmod(dst, 0o644); err != nil {
		return 0, buildErr(err, "%s", what)
	}
	if err := os.Truncate(dst, size); err != nil {
		return 0, buildErr(err, "%s: growing the image", what)
	}
	if err := fsck(ctx, r, dst); err != nil {
		return 0, err
	}
	if err := r.run(ctx, dir, nil, "resize2fs", "-f", dst); err != nil {
		return 0, err
	}
	return size, nil
}

// fsck replays the journal of an image whose guest powered off without
// unmounting and repairs what it must; exit 1 means "errors corrected".
func fsck(ctx context.Context, r *runner, img string) error {
	path, err := lookTool("e2fsck")
	if err != nil {
		return checkTools(hostTool{Cmd: "e2fsck", Package: "e2fsprogs"})
	}
	fmt.Fprintf(r.log, "$ e2fsck -fy %s\n", img)
	cmd := exec.CommandContext(ctx, path, "-fy", img)
	cmd.Stdout, cmd.Stderr, cmd.Env = r.log, r.log, r.env
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctxError(ctx, r.what)
		}
		return buildErr(err, "%s: e2fsck found errors it could not repair in the image (log: %s)", r.what, r.logPath)
	}
	return nil
}

// listBuilt returns one Info per custom environment name.
func (s *Store) listBuilt(agentSum string) []Info {
	dir := filepath.Join(s.root, "built")
	entries, _ := os.ReadDir(dir)
	var out []Info
	for _, e := range entries {
		var rec builtRecord
		if !strings.HasSuffix(e.Name(), ".json") || readJSON(filepath.Join(dir, e.Name()), &rec) != nil || digestHex(rec.Digest) == "" {
			continue
		}
		info := Info{Name: rec.Name, Source: SourceBuild, Digest: rec.Digest, Packages: []string{},
			Description: fmt.Sprintf("built from %s with %d steps", rec.Def.From, len(rec.Def.Steps)),
			Base:        rec.Def.From, Steps: rec.Def.Steps}
		in, _ := s.pickBuild(digestHex(rec.Digest), agentSum)
		if in == nil {
			in, _ = s.pickBuild(digestHex(rec.Digest), "")
		}
		if in != nil {
			info.Installed = agentSum == "" || in.manifest.AgentSHA256 == agentSum
			info.Version, info.RootfsSize, info.DiskUsage = in.version, in.manifest.Rootfs.Size, in.manifest.Rootfs.DiskUsage
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// pruneBuilds removes built versions not in use (and damaged ones), then
// name records whose build is gone.
func (s *Store) pruneBuilds(inUse func(name, rootfsPath string) bool) []PrunedItem {
	var items []PrunedItem
	dirs, _ := os.ReadDir(s.buildsDir())
	for _, d := range dirs {
		h := d.Name()
		if digestHex("sha256:"+h) == "" {
			items = append(items, s.removeItem("build", h, filepath.Join(s.buildsDir(), h))...)
			continue
		}
		unlock, ok := tryLock(s.buildLockPath(h))
		if !ok {
			continue // being built, or the base of a build
		}
		versions, _ := os.ReadDir(filepath.Join(s.buildsDir(), h))
		for _, v := range versions {
			p := filepath.Join(s.buildsDir(), h, v.Name())
			m, err := readManifest(s.root, p)
			broken := err != nil || !buildVerRE().MatchString(v.Name()) || m.checkFiles() == errRootfsFiles
			if !broken && inUse(m.Name, m.Rootfs.Path) {
				continue
			}
			label := h[:12] + " " + v.Name()
			if m != nil {
				label = m.Name + " " + v.Name()
			}
			items = append(items, s.removeItem("build", label, p)...)
		}
		os.Remove(filepath.Join(s.buildsDir(), h)) // only succeeds when empty
		unlock()
	}
	dir := filepath.Join(s.root, "built")
	recs, _ := os.ReadDir(dir)
	for _, r := range recs {
		var rec builtRecord
		p := filepath.Join(dir, r.Name())
		if readJSON(p, &rec) == nil && digestHex(rec.Digest) != "" {
			if _, err := os.Stat(filepath.Join(s.buildsDir(), digestHex(rec.Digest))); err == nil {
				continue
			}
			unlock, ok := tryLock(s.lockPath("built-" + refKey(rec.Name)))
			if !ok {
				continue
			}
			items = append(items, s.removeItem("built", rec.Name, p)...)
			unlock()
			continue
		}
		items = append(items, s.removeItem("built", r.Name(), p)...)
	}
	return items
}

func (s *Store) builtEnv(ctx context.Context, rec builtRecord) (*Environment, error) {
	in, err := s.getBuilt(ctx, rec, false)
	if err != nil {
		return nil, err
	}
	return in.environment(), nil
}
