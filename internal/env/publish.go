package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/env/artifact"
	"github.com/pyrovm/pyro/internal/env/oci"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// Publishing: Push sends an installed environment to a registry as a pyro
// environment artifact (internal/env/artifact); pulls install such an
// artifact as is, without building anything:
//
//   - a reference that names an artifact ("pyro env pull REG/team/env:1")
//     lands like an image, in images/<artifact digest hex>/<version>/,
//     source "artifact";
//   - with Options.EnvRegistry set, a catalog name missing from the cache
//     is pulled from EnvRegistry/<name> ("REG/debian:12") into
//     environments/<slug>/<version>/ before any local build, and a host
//     that cannot build the guest kernel takes it from the first catalog
//     environment published there.
//
// The guest kernel of an artifact goes into kernels/<config hash>/ like a
// local build, so environments share it.

// PublishedInfo says where an environment installed from an artifact came from.
type PublishedInfo struct {
	Reference string    `json:"reference"` // the artifact pulled
	Digest    string    `json:"digest"`    // its manifest digest
	Name      string    `json:"name"`      // the environment's name where it was built
	Source    string    `json:"source"`    // and its source there
	BuiltAt   time.Time `json:"built_at"`  // when it was built there
	Version   string    `json:"version"`   // and its version there
	PulledAt  time.Time `json:"pulled_at"` // when it was installed here
}

// PushResult says what Push published.
type PushResult struct {
	Environment  string `json:"environment"`
	Version      string `json:"version"`
	Reference    string `json:"reference"`
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifact_type"`
	KernelBytes  int64  `json:"kernel_bytes"` // compressed, as stored in the registry
	RootfsBytes  int64  `json:"rootfs_bytes"`
}

// Annotation on an artifact: the kernel config fragment its kernel was
// built from, so a host taking only the kernel gets one with pyro's options.
const kernelFragmentAnnotation = "dev.pyrovm.kernel.fragment"

func kernelFragmentHash() string {
	sum := sha256.Sum256(kernelFragment)
	return hex.EncodeToString(sum[:8])
}

func (s *Store) ociOptions() oci.Options { return oci.Options{Insecure: s.opts.InsecureRegistries} }

// Push publishes the installed environment name (catalog name or
// reference) to target, a registry tag.
func (s *Store) Push(ctx context.Context, name, target string) (*PushResult, error) {
	ref, err := oci.Parse(target)
	if err != nil {
		return nil, err
	}
	if ref.Kind != oci.KindRegistry || ref.Digest != "" {
		return nil, errdefs.InvalidArgument("reference",
			"%q: push to a registry tag, e.g. registry.example.com/team/debian:12 (the registry assigns the digest)", target)
	}
	env, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	m := env.Manifest
	s.progress(ctx, Event{Stage: "push", Message: "checking that " + ref.Name + " may be pushed"})
	if err := oci.CheckPush(ctx, ref, s.ociOptions()); err != nil {
		return nil, err
	}
	b, err := s.newBuildDir(ctx, "push")
	if err != nil {
		return nil, err
	}
	defer b.remove()
	what := "pushing " + m.Name
	kb, err := artifact.Compress(ctx, m.Kernel.Path, filepath.Join(b.dir, "vmlinux.zst"), artifact.KernelMediaType, "vmlinux",
		s.byteProgress(ctx, "push", "compressing the guest kernel"))
	if err != nil {
		return nil, pushErr(ctx, what, err)
	}
	rb, err := artifact.Compress(ctx, m.Rootfs.Path, filepath.Join(b.dir, "rootfs.ext4.zst"), artifact.RootfsMediaType, rootfsFile,
		s.byteProgress(ctx, "push", "compressing the root filesystem"))
	if err != nil {
		return nil, pushErr(ctx, what, err)
	}
	if kb.DiffID.Hex != m.Kernel.SHA256 || rb.DiffID.Hex != m.Rootfs.SHA256 {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeImageCorrupt,
			"%s %s no longer matches its manifest (damaged on disk): run \"pyro env pull %s\" to repair it, then push again", m.Name, m.Version, m.Name)
	}
	pub := *m
	pub.Kernel.Path, pub.Rootfs.Path = "vmlinux", rootfsFile
	config, err := json.MarshalIndent(&pub, "", "  ")
	if err != nil {
		return nil, buildErr(err, "%s", what)
	}
	img, err := artifact.New(config, kb, rb, map[string]string{
		"org.opencontainers.image.title":   m.Name,
		"org.opencontainers.image.version": m.Version,
		"org.opencontainers.image.created": m.CreatedAt.UTC().Format(time.RFC3339),
		kernelFragmentAnnotation:           kernelFragmentHash(),
	})
	if err != nil {
		return nil, buildErr(err, "%s", what)
	}
	r, err := ref.Remote(s.ociOptions())
	if err != nil {
		return nil, err
	}
	s.progress(ctx, Event{Stage: "push", Message: fmt.Sprintf("uploading %s to %s (%d MiB)", m.Name, ref.Name, (kb.Size+rb.Size)>>20)})
	if err := artifact.Push(r, img, s.byteProgress(ctx, "push", "uploading"), oci.RemoteOptions(ctx, s.ociOptions())...); err != nil {
		return nil, oci.PushError(ctx, ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, buildErr(err, "%s", what)
	}
	return &PushResult{Environment: m.Name, Version: m.Version, Reference: ref.Name, Digest: d.String(),
		ArtifactType: artifact.ArtifactType, KernelBytes: kb.Size, RootfsBytes: rb.Size}, nil
}

func pushErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctxError(ctx, what)
	}
	return buildErr(err, "%s", what)
}

// byteProgress reports bytes as Done/Total, every 4 MiB and at the end
// (an MCP client gets one notification each). It may be called from
// another goroutine (uploads): the listeners are safe for that.
func (s *Store) byteProgress(ctx context.Context, stage, msg string) func(done, total int64) {
	var last int64 = -1
	return func(done, total int64) {
		if last >= 0 && done-last < 4<<20 && done != total {
			return
		}
		last = done
		s.progress(ctx, Event{Stage: stage, Message: msg, Done: done, Total: total})
	}
}

// pullArtifactRef installs ref when it names a pyro environment artifact;
// ok false means it is an ordinary image (the caller converts it). Caller
// holds the reference lock.
func (s *Store) pullArtifactRef(ctx context.Context, ref oci.Ref, ag agentInfo, opts PullOptions) (env *Environment, ok bool, err error) {
	a, err := s.getArtifact(ctx, ref)
	if err != nil || a == nil {
		return nil, err != nil, err
	}
	if opts.DiskSize != 0 {
		return nil, true, errdefs.InvalidArgument("disk_size", "%s is a published pyro environment: it comes with its own disk size", ref.Name)
	}
	h := digestHex(a.Digest)
	if h == "" {
		return nil, true, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt, "%s: unsupported digest %q", ref.Name, a.Digest)
	}
	unlock, err := acquireLock(ctx, s.imageLockPath(h), func() {
		s.progress(ctx, Event{Stage: "pull", Message: "waiting for another pyro process installing " + a.Digest})
	})
	if err != nil {
		return nil, true, err
	}
	defer unlock()
	in, _ := s.pickImage(h, ag.sha256)
	if in == nil || opts.Force {
		pm, err := checkArtifact(a, ref, nil, ag)
		if err != nil {
			return nil, true, err
		}
		if env, err = s.installArtifact(ctx, a, ref, pm, nil); err != nil {
			return nil, true, err
		}
	} else {
		env = in.environment()
	}
	if err := s.writeRef(ref.Name, a.Digest); err != nil {
		return nil, true, buildErr(err, "recording %s", ref.Name)
	}
	return env, true, nil
}

// getArtifact reads ref's manifest: nil, nil when it is no pyro artifact.
func (s *Store) getArtifact(ctx context.Context, ref oci.Ref) (*artifact.Artifact, error) {
	r, err := ref.Remote(s.ociOptions())
	if err != nil {
		return nil, err
	}
	a, err := artifact.Get(r, oci.RemoteOptions(ctx, s.ociOptions())...)
	if err != nil {
		return nil, artifactErr(ctx, ref, err)
	}
	return a, nil
}

func artifactErr(ctx context.Context, ref oci.Ref, err error) error {
	if errors.Is(err, artifact.ErrCorrupt) {
		e := errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt,
			"%s: %v (a broken registry or mirror, or tampering); nothing was installed", ref.Name, err)
		e.Cause = err
		return e
	}
	return oci.PullError(ctx, ref, err)
}

var kernelHashRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{16}$`) })

// Bounds on what an artifact may claim (a hostile registry could ask for
// a disk-filling sparse file).
const (
	maxKernelSize = 512 << 20
	maxRootfsSize = 1 << 40
)

// parseArtifact reads an artifact's pyro manifest and checks that it is
// well formed.
func parseArtifact(a *artifact.Artifact, ref oci.Ref) (*Manifest, error) {
	var pm Manifest
	if err := json.Unmarshal(a.Config, &pm); err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt, "%s: its pyro manifest is unreadable", ref.Name)
	}
	bad := func(format string, args ...any) error {
		return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt, "%s: %s; nothing was installed", ref.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case pm.SchemaVersion != manifestSchemaVersion:
		return nil, artifactMismatch(ref, "has manifest schema %d, this pyro reads %d", pm.SchemaVersion, manifestSchemaVersion)
	case digestHex("sha256:"+pm.Kernel.SHA256) == "" || digestHex("sha256:"+pm.Rootfs.SHA256) == "":
		return nil, bad("its manifest lacks the kernel or root filesystem sha256")
	case pm.Kernel.Size <= 0 || pm.Kernel.Size > maxKernelSize || pm.Rootfs.Size <= 0 || pm.Rootfs.Size > maxRootfsSize:
		return nil, bad("its manifest gives impossible sizes (kernel %d, rootfs %d bytes)", pm.Kernel.Size, pm.Rootfs.Size)
	case !kernelHashRE().MatchString(pm.Kernel.ConfigHash):
		return nil, bad("its manifest names no valid kernel config hash")
	}
	return &pm, nil
}

func artifactMismatch(ref oci.Ref, format string, args ...any) error {
	return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeArtifactMismatch,
		"%s %s: publish it again with this pyro (\"pyro env push ENV %s\" on a host that has it), or use the pyro version that published it",
		ref.Name, fmt.Sprintf(format, args...), ref.Name)
}

// checkArtifact is parseArtifact plus: made for this pyro (agent, image
// layout; for a catalog entry e, its name and package recipe).
func checkArtifact(a *artifact.Artifact, ref oci.Ref, e *catalogEntry, ag agentInfo) (*Manifest, error) {
	pm, err := parseArtifact(a, ref)
	if err != nil {
		return nil, err
	}
	switch {
	case pm.ImageRevision != imageRevision:
		return nil, artifactMismatch(ref, "was built with pyro image layout %d, this pyro uses %d", pm.ImageRevision, imageRevision)
	case pm.AgentSHA256 != ag.sha256:
		return nil, artifactMismatch(ref, "was built with guest agent sha256 %.12s, this pyro's agent is %.12s", pm.AgentSHA256, ag.sha256)
	}
	if e != nil {
		switch {
		case pm.Name != e.Name:
			return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt, "%s holds environment %q, not %q; nothing was installed", ref.Name, pm.Name, e.Name)
		case !validVersion(pm.Version):
			return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt, "%s: version %q is not a catalog version; nothing was installed", ref.Name, pm.Version)
		case pm.RecipeHash != e.recipeHash():
			return nil, artifactMismatch(ref, "was built from another package recipe of %s", e.Name)
		}
	}
	return pm, nil
}

// installArtifact fetches kernel and root filesystem and installs them:
// for a catalog entry e as a version of e, else as an image named by ref.
// Caller holds the environment (e) or image lock.
func (s *Store) installArtifact(ctx context.Context, a *artifact.Artifact, ref oci.Ref, pm *Manifest, e *catalogEntry) (*Environment, error) {
	start := time.Now()
	k, err := s.landKernel(ctx, a, ref, pm.Kernel)
	if err != nil {
		return nil, err
	}
	b, err := s.newBuildDir(ctx, "pull-artifact")
	if err != nil {
		return nil, err
	}
	defer b.remove()
	out := filepath.Join(b.dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, buildErr(err, "pulling %s", ref.Name)
	}
	img := filepath.Join(out, rootfsFile)
	s.progress(ctx, Event{Stage: "pull", Message: fmt.Sprintf("fetching the root filesystem of %s (%d MiB compressed)", pm.Name, a.Rootfs.Size>>20)})
	err = a.Extract(ctx, a.Rootfs, img, artifact.Want{SHA256: pm.Rootfs.SHA256, Size: pm.Rootfs.Size},
		s.byteProgress(ctx, "pull", "fetching the root filesystem"))
	if err != nil {
		return nil, artifactErr(ctx, ref, err)
	}
	if err := os.Chmod(img, 0o444); err != nil {
		return nil, buildErr(err, "pulling %s", ref.Name)
	}

	m := *pm
	now := time.Now().UTC()
	m.Published = &PublishedInfo{Reference: ref.Name, Digest: a.Digest, Name: pm.Name, Source: pm.Source, BuiltAt: pm.CreatedAt,
		Version: pm.Version, PulledAt: now}
	if m.Published.Source == "" {
		m.Published.Source = SourceDebian
	}
	m.CreatedAt, m.Kernel = now, k
	var final string
	if e != nil {
		m.Source = SourceDebian
		m.Version = s.freeVersion(filepath.Join(s.root, "environments", slug(e.Name)), pm.Version)
		final = filepath.Join(s.root, "environments", slug(e.Name), m.Version)
	} else {
		h := digestHex(a.Digest)
		m.Name, m.Source, m.Reference, m.Digest = ref.Name, SourceArtifact, ref.Name, a.Digest
		m.Description = "pyro environment " + pm.Name + " published as " + ref.Name
		m.Version = newVersion(s.imagesDir(), h, m.AgentSHA256)
		final = filepath.Join(s.imagesDir(), h, m.Version)
	}
	m.Rootfs = RootfsInfo{Path: filepath.Join(final, rootfsFile), SHA256: pm.Rootfs.SHA256, Size: pm.Rootfs.Size, DiskUsage: fsutil.DiskUsage(img)}
	if err := writeManifest(s.root, out, &m); err != nil {
		return nil, buildErr(err, "pulling %s: writing manifest", ref.Name)
	}
	if err := fsutil.SyncDir(out); err != nil {
		return nil, buildErr(err, "pulling %s", ref.Name)
	}
	if err := s.replaceDir(out, final, b.dir); err != nil {
		return nil, buildErr(err, "pulling %s: installing %s", ref.Name, final)
	}
	s.progress(ctx, Event{Stage: "pull", Message: fmt.Sprintf("%s %s ready in %s (published, nothing built)", m.Name, m.Version, time.Since(start).Round(100*time.Millisecond))})
	return &Environment{Manifest: &m, Dir: final, KernelPath: m.Kernel.Path, RootfsPath: m.Rootfs.Path}, nil
}

// freeVersion is v, or v-2, v-3... (on v without its own "-N") when a
// version directory of that name exists (a local build the same day with
// the same agent).
func (s *Store) freeVersion(dir, v string) string {
	base := versionSuffixRE().ReplaceAllString(v, "")
	cand := v
	for n := 2; ; n++ {
		if _, err := os.Lstat(filepath.Join(dir, cand)); errors.Is(err, os.ErrNotExist) {
			return cand
		}
		cand = base + "-" + strconv.Itoa(n)
	}
}

var versionSuffixRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`-[0-9]+$`) })

// landKernel makes the artifact's kernel available in kernels/<config
// hash>/: the cached one when present (same config, same source), else
// the one the artifact carries.
func (s *Store) landKernel(ctx context.Context, a *artifact.Artifact, ref oci.Ref, want KernelInfo) (KernelInfo, error) {
	hash := want.ConfigHash
	if k, ok := s.cachedKernel(hash); ok {
		return k, nil
	}
	unlock, err := acquireLock(ctx, s.lockPath("kernel-"+hash), func() {
		s.progress(ctx, Event{Stage: "kernel", Message: "waiting for another pyro process installing the guest kernel"})
	})
	if err != nil {
		return KernelInfo{}, err
	}
	defer unlock()
	if k, ok := s.cachedKernel(hash); ok {
		return k, nil
	}
	b, err := s.newBuildDir(ctx, "kernel-"+hash)
	if err != nil {
		return KernelInfo{}, err
	}
	defer b.remove()
	out := filepath.Join(b.dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return KernelInfo{}, buildErr(err, "pulling the guest kernel")
	}
	s.progress(ctx, Event{Stage: "pull", Message: fmt.Sprintf("fetching guest kernel %s from %s", want.Release, ref.Name)})
	err = a.Extract(ctx, a.Kernel, filepath.Join(out, "vmlinux"), artifact.Want{SHA256: want.SHA256, Size: want.Size},
		s.byteProgress(ctx, "pull", "fetching the guest kernel"))
	if err != nil {
		return KernelInfo{}, artifactErr(ctx, ref, err)
	}
	rec := kernelRecord{SHA256: want.SHA256, Size: want.Size, Release: want.Release, ConfigHash: hash,
		SourcePackage: kernelSourcePackage, SourceVersion: "published as " + ref.Name, BuiltAt: time.Now().UTC()}
	if err := fsutil.WriteJSONAtomic(filepath.Join(out, "kernel.json"), rec, 0o644); err != nil {
		return KernelInfo{}, buildErr(err, "pulling the guest kernel")
	}
	if err := fsutil.SyncDir(out); err != nil {
		return KernelInfo{}, buildErr(err, "pulling the guest kernel")
	}
	if err := s.replaceDir(out, s.kernelDir(hash), b.dir); err != nil {
		return KernelInfo{}, buildErr(err, "installing the guest kernel")
	}
	k, ok := s.cachedKernel(hash)
	if !ok {
		return KernelInfo{}, buildErr(errors.New("installed kernel failed its check"), "pulling the guest kernel")
	}
	return k, nil
}
