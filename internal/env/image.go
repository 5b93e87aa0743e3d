package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/env/flatten"
	"github.com/pyrovm/pyro/internal/env/oci"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/guestexec"
)

// OCI image environments live beside the catalog's:
//
//	blobs/sha256/<hex>                      layer blobs as fetched, shared by all images
//	images/<digest hex>/<version>/rootfs.ext4, manifest.json (written last)
//	refs/<key>.json                         reference -> digest (key: 32 hex of sha256(reference))
//
// version = "<first 12 hex of the digest>.<first 8 hex of the agent
// sha256>", "-N" appended for a forced rebuild. As for the catalog, a
// version directory is never rewritten and appears by one rename.

var imageVersionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{12}\.[0-9a-f]{8}(-[0-9]+)?$`) })

// IsCatalogName reports whether name is a catalog environment; any other
// name is taken as an image reference.
func IsCatalogName(name string) bool {
	for _, e := range catalog {
		if e.Name == name {
			return true
		}
	}
	return false
}

// PullOptions tune one pull.
type PullOptions struct {
	Force    bool  // rebuild even when installed (catalog: fresh packages)
	DiskSize int64 // image environments: ext4 size in bytes; 0 = content plus headroom
}

type refRecord struct {
	Reference string    `json:"reference"`
	Digest    string    `json:"digest"`
	UpdatedAt time.Time `json:"updated_at"`
}

func refKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

func (s *Store) refPath(name string) string {
	return filepath.Join(s.root, "refs", refKey(name)+".json")
}

func (s *Store) readRef(name string) (refRecord, bool) {
	var rec refRecord
	if err := readJSON(s.refPath(name), &rec); err != nil || rec.Reference != name || digestHex(rec.Digest) == "" {
		return rec, false
	}
	return rec, true
}

func (s *Store) writeRef(name, digest string) error {
	if rec, ok := s.readRef(name); ok && rec.Digest == digest {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(s.root, "refs"), 0o755); err != nil {
		return err
	}
	return fsutil.WriteJSONAtomic(s.refPath(name), refRecord{Reference: name, Digest: digest, UpdatedAt: time.Now().UTC()}, 0o644)
}

// digestHex returns the hex of a sha256 digest, or "" when it is not one.
func digestHex(d string) string {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return ""
	}
	return h
}

func (s *Store) imagesDir() string             { return filepath.Join(s.root, "images") }
func (s *Store) blobs() oci.Blobs              { return oci.Blobs{Dir: filepath.Join(s.root, "blobs")} }
func (s *Store) imageLockPath(h string) string { return s.lockPath("image-" + h[:16]) }

// scanImage reads every version of the image with digest hex h, newest first.
func (s *Store) scanImage(h string) []install {
	return s.scanVersions(filepath.Join(s.imagesDir(), h), h, imageVersionRE(), func(m *Manifest) bool {
		return m.Source == SourceOCI || m.Source == SourceArtifact
	})
}

// scanVersions reads every version directory under base (named as verRE
// says) of the environment with digest hex h, newest first; mine says
// whether a manifest is of the kind base holds.
func (s *Store) scanVersions(base, h string, verRE *regexp.Regexp, mine func(*Manifest) bool) []install {
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []install
	for _, de := range entries {
		if !de.IsDir() || !verRE.MatchString(de.Name()) {
			continue
		}
		in := install{dir: filepath.Join(base, de.Name()), version: de.Name()}
		m, err := readManifest(s.root, in.dir)
		switch {
		case err != nil:
			in.err = fmt.Errorf("no valid manifest: %w", err)
		case !mine(m) || digestHex(m.Digest) != h || m.Version != de.Name():
			in.err = fmt.Errorf("manifest names %s %s", m.Digest, m.Version)
		default:
			in.manifest = m
			in.err = m.checkFiles()
		}
		out = append(out, in)
	}
	sort.SliceStable(out, func(i, j int) bool { return newer(out[i], out[j]) })
	return out
}

// pickImage chooses the newest usable version of image h; agentSum ""
// accepts any agent.
func (s *Store) pickImage(h, agentSum string) (*install, string) {
	return pickNewest(s.scanImage(h), agentSum, "is not pulled", "converted", func(m *Manifest) string {
		if m.ImageRevision != imageRevision {
			return "was converted by an older pyro"
		}
		return ""
	})
}

// pickNewest returns the first usable install of ins (newest first), or
// why none is: missing when there is none at all, else the last reason one
// was passed over (damaged, stale by its own check, another agent; made
// says how a version came to be, for that message). agentSum "" accepts
// any agent.
func pickNewest(ins []install, agentSum, missing, made string, stale func(*Manifest) string) (*install, string) {
	why := missing
	for _, in := range ins {
		switch {
		case in.manifest == nil:
			continue
		case in.err != nil:
			why = "is damaged (" + in.err.Error() + ")"
		case stale != nil && stale(in.manifest) != "":
			why = stale(in.manifest)
		case agentSum != "" && in.manifest.AgentSHA256 != agentSum:
			why = "was " + made + " with a different guest agent"
		default:
			return &in, ""
		}
	}
	return nil, why
}

// imageFor finds the installed image a reference names without any
// network: a digest reference directly, a tag through its ref record.
func (s *Store) imageFor(ref oci.Ref, agentSum string) (*install, string) {
	d := ref.Digest
	if d == "" {
		rec, ok := s.readRef(ref.Name)
		if !ok {
			return nil, "is not pulled"
		}
		d = rec.Digest
	}
	return s.pickImage(digestHex(d), agentSum)
}

func (s *Store) getImage(ctx context.Context, name string, anyAgent bool) (*install, error) {
	ref, err := oci.Parse(name)
	if err != nil {
		return nil, err
	}
	if err := s.init(); err != nil {
		return nil, err
	}
	ag, _, err := s.agent(ctx)
	if err != nil && !anyAgent {
		return nil, err
	}
	in, why := s.imageFor(ref, ag.sha256)
	if in == nil && anyAgent {
		in, _ = s.imageFor(ref, "")
	}
	if in == nil {
		return nil, withListHint(errdefs.New(errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing, "environment %q %s", ref.Name, why).
			WithNext(": %s", "pyro env pull "+ref.Name, ""))
	}
	return in, nil
}

// ensureImage is Ensure for a reference: the cached image, else a pull
// when the policy allows it.
func (s *Store) ensureImage(ctx context.Context, name string) (*Environment, error) {
	in, err := s.getImage(ctx, name, false)
	if err == nil {
		return in.environment(), nil
	}
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		return nil, err
	}
	ref, _ := oci.Parse(name)
	if s.opts.PullAllowed != nil && !s.opts.PullAllowed(ref.Name) {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodePullNotAllowed,
			"environment %q is not in the local cache and this server's operator does not allow pulling it (pyro mcp serve --allow-pull PATTERN); local environments: %s",
			ref.Name, strings.Join(s.localNames(ctx), ", "))
	}
	s.progress(ctx, Event{Stage: "pull", Message: ref.Name + " is not in the cache: pulling it"})
	return s.pullImage(ctx, name, PullOptions{})
}

// localNames lists what runs without a pull: installed catalog
// environments and pulled references.
func (s *Store) localNames(ctx context.Context) []string {
	var out []string
	infos, _ := s.List(ctx)
	for _, i := range infos {
		if i.Installed {
			out = append(out, i.Name)
		}
	}
	if len(out) == 0 {
		out = []string{"none (an operator can run \"pyro env pull ENV\")"}
	}
	return out
}

func (s *Store) pullImage(ctx context.Context, name string, opts PullOptions) (*Environment, error) {
	ref, err := oci.Parse(name)
	if err != nil {
		return nil, err
	}
	ag, err := s.readyToBuild(ctx)
	if err != nil {
		return nil, err
	}
	unlockRef, err := acquireLock(ctx, s.lockPath("ref-"+refKey(ref.Name)), func() {
		s.progress(ctx, Event{Stage: "pull", Message: "waiting for another pyro process pulling " + ref.Name})
	})
	if err != nil {
		return nil, err
	}
	defer unlockRef()
	// Blobs fetched but not yet part of an image must survive a prune.
	unlockBlobs, err := acquireSharedLock(ctx, s.lockPath("blobs"))
	if err != nil {
		return nil, err
	}
	defer unlockBlobs()

	s.progress(ctx, Event{Stage: "pull", Message: "resolving " + ref.Name})
	if ref.Kind == oci.KindRegistry {
		// A published pyro environment installs as is (publish.go).
		if env, ok, err := s.pullArtifactRef(ctx, ref, ag, opts); ok {
			return env, withListHint(err)
		}
	}
	im, err := oci.Resolve(ctx, ref, oci.Options{Insecure: s.opts.InsecureRegistries})
	if err != nil {
		return nil, withListHint(err)
	}
	h := digestHex(im.Digest)
	if h == "" {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt, "%s: unsupported digest %q", ref.Name, im.Digest)
	}
	unlock, err := acquireLock(ctx, s.imageLockPath(h), func() {
		s.progress(ctx, Event{Stage: "pull", Message: "waiting for another pyro process converting " + im.Digest})
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !opts.Force {
		// An explicit disk size other than the installed one is a rebuild.
		if in, _ := s.pickImage(h, ag.sha256); in != nil && (opts.DiskSize == 0 || roundUp(opts.DiskSize, 1<<20) == in.manifest.Rootfs.Size) {
			if err := s.writeRef(ref.Name, im.Digest); err != nil {
				return nil, buildErr(err, "recording %s", ref.Name)
			}
			return in.environment(), nil
		}
	}
	paths, err := s.fetchLayers(ctx, im)
	if err != nil {
		return nil, err
	}
	env, err := s.convertImage(ctx, im, paths, ag, opts.DiskSize)
	if err != nil {
		return nil, err
	}
	if err := s.writeRef(ref.Name, im.Digest); err != nil {
		return nil, buildErr(err, "recording %s", ref.Name)
	}
	return env, nil
}

// fetchLayers brings every layer into the blob store (those already there
// are shared), with byte progress.
func (s *Store) fetchLayers(ctx context.Context, im *oci.Image) ([]string, error) {
	var total, done int64
	for _, l := range im.Layers {
		if l.Size > 0 && !s.blobs().Has(l) {
			total += l.Size
		}
	}
	if total > 0 {
		s.progress(ctx, Event{Stage: "pull", Message: fmt.Sprintf("fetching %d layers (%d MiB)", len(im.Layers), total>>20)})
	}
	paths := make([]string, len(im.Layers))
	for i, l := range im.Layers {
		base := done
		have := s.blobs().Has(l)
		var last int64
		p, err := s.blobs().Fetch(ctx, im, l, func(n int64) {
			// Every 4 MiB and at the end: MCP clients get one notification each.
			if total > 0 && (n-last >= 4<<20 || n == l.Size) {
				last = n
				s.progress(ctx, Event{Stage: "pull", Message: "fetching layers", Done: base + n, Total: total})
			}
		})
		if err != nil {
			return nil, err
		}
		if !have && l.Size > 0 {
			done += l.Size
		}
		paths[i] = p
		if st, err := os.Stat(p); err == nil {
			im.Layers[i].Size = st.Size()
		}
	}
	return paths, nil
}

// imageSource is an OCI image's layers, flattened in order.
type imageSource struct {
	s       *Store
	im      *oci.Image
	blobs   []string
	skipped []string
}

func (src *imageSource) fill(ctx context.Context, _ *runner, tree string) error {
	t, err := flatten.Open(tree)
	if err != nil {
		return buildErr(err, "opening %s", tree)
	}
	defer t.Close()
	t.MaxBytes, t.MaxEntries = src.s.unpackLimits()
	for i, p := range src.blobs {
		src.s.progress(ctx, Event{Stage: "image", Message: fmt.Sprintf("applying layer %d/%d", i+1, len(src.blobs))})
		rc, err := oci.Uncompressed(p)
		if err != nil {
			return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt,
				"%s: layer %s cannot be decompressed", src.im.Ref.Name, src.im.Layers[i].Digest)
		}
		st, err := t.Apply(ctx, rc, src.im.Layers[i].Digest)
		rc.Close()
		if err != nil {
			if ctx.Err() != nil {
				return ctxError(ctx, "converting "+src.im.Ref.Name)
			}
			return err
		}
		src.skipped = append(src.skipped, st.Skipped...)
	}
	_, fi, err := t.ResolveFile("/bin/sh")
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeImageNoShell,
			"%s has no /bin/sh (a distroless or scratch image?): pyro runs every command with /bin/sh -lc; use a variant with a shell (e.g. -slim, alpine or busybox based), or add one in a layer",
			src.im.Ref.Name)
	}
	// pyro writes into these next, through os.Root, which refuses absolute
	// symlinks: make any such link relative (same tree in the guest).
	for _, d := range []string{"sbin", "etc", "root", "tmp", "workspace", "etc/pyro", "etc/profile.d"} {
		if err := t.Relativize(d); err != nil {
			return buildErr(err, "%s: rewriting /%s", src.im.Ref.Name, d)
		}
	}
	return writeImageEnv(t.Root(), src.im.Config.Env)
}

func (src *imageSource) packages(context.Context, *runner, string) ([]string, error) {
	return nil, nil
}

// writeImageEnv hands the image config's Env to the guest: the agent
// starts every command from agentproto.ImageEnvPath, and a profile.d
// script puts PATH back after /etc/profile resets it for `sh -lc`.
func writeImageEnv(root *os.Root, envv []string) error {
	var b strings.Builder
	path := ""
	for _, kv := range envv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(kv, "\n\x00") {
			continue
		}
		b.WriteString(kv + "\n")
		if k == "PATH" {
			path = v
		}
	}
	rel := strings.TrimPrefix(agentproto.ImageEnvPath, "/")
	if err := root.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return err
	}
	if err := replaceFile(root, rel, strings.NewReader(b.String()), 0o644); err != nil {
		return err
	}
	if st, err := root.Stat("etc/profile.d"); path != "" && err == nil && st.IsDir() {
		script := "# pyro: the image's PATH, which /etc/profile may have reset\nPATH=" + guestexec.Quote(path) + "\nexport PATH\n"
		return replaceFile(root, "etc/profile.d/zz-pyro-image-path.sh", strings.NewReader(script), 0o644)
	}
	return nil
}

// convertImage builds and installs a new version of image im. Caller holds
// the image lock.
func (s *Store) convertImage(ctx context.Context, im *oci.Image, blobs []string, ag agentInfo, diskSize int64) (*Environment, error) {
	what := "image " + im.Ref.Name
	if err := checkTools(toolMkfsExt4); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeEnvironmentBuild,
			"converting an image into an environment needs root (file owners in the image): run \"pyro env pull %s\" as root", im.Ref.Name)
	}
	k, err := s.ensureKernel(ctx, false)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	b, r, done, err := s.newToolBuild(ctx, "image-oci", what)
	if err != nil {
		return nil, err
	}
	defer done()
	src := &imageSource{s: s, im: im, blobs: blobs}
	out := filepath.Join(b.dir, "out")
	rootfs, _, err := s.buildRootfs(ctx, r, what, src, filepath.Join(b.dir, "root"), out, ag.path, diskSize)
	if err != nil {
		return nil, err
	}
	h := digestHex(im.Digest)
	now := time.Now().UTC()
	version := newVersion(s.imagesDir(), h, ag.sha256)
	final := filepath.Join(s.imagesDir(), h, version)
	m := &Manifest{
		SchemaVersion: manifestSchemaVersion,
		Name:          im.Ref.Name,
		Version:       version,
		Description:   "OCI image " + im.Ref.Name,
		CreatedAt:     now,
		Kernel:        k,
		Rootfs:        rootfs,
		AgentSHA256:   ag.sha256,
		Packages:      []string{},
		ImageRevision: imageRevision,
		Source:        SourceOCI,
		Reference:     im.Ref.Name,
		Digest:        im.Digest,
		Image:         &ImageInfo{Platform: oci.Platform, Layers: im.Layers, Config: im.Config, Skipped: src.skipped},
	}
	m.Rootfs.Path = filepath.Join(final, rootfsFile)
	if err := writeManifest(s.root, out, m); err != nil {
		return nil, buildErr(err, "%s: writing manifest", what)
	}
	if err := fsutil.SyncDir(out); err != nil {
		return nil, buildErr(err, "%s", what)
	}
	if err := s.replaceDir(out, final, b.dir); err != nil {
		return nil, buildErr(err, "%s: installing %s", what, final)
	}
	s.progress(ctx, Event{Stage: "image", Message: fmt.Sprintf("%s ready in %s", im.Ref.Name, time.Since(start).Round(100*time.Millisecond))})
	return &Environment{Manifest: m, Dir: final, KernelPath: m.Kernel.Path, RootfsPath: m.Rootfs.Path}, nil
}

// newVersion names a new version directory of key under dir: the key's and
// the agent's short hashes, numbered when that name is taken.
func newVersion(dir, key, agentSum string) string {
	base := key[:12] + "." + agentSum[:8]
	v := base
	for n := 2; ; n++ {
		if _, err := os.Lstat(filepath.Join(dir, key, v)); errors.Is(err, fs.ErrNotExist) {
			return v
		}
		v = base + "-" + strconv.Itoa(n)
	}
}

// listImages returns one Info per pulled reference.
func (s *Store) listImages(agentSum string) []Info {
	entries, _ := os.ReadDir(filepath.Join(s.root, "refs"))
	var out []Info
	for _, e := range entries {
		var rec refRecord
		if !strings.HasSuffix(e.Name(), ".json") || readJSON(filepath.Join(s.root, "refs", e.Name()), &rec) != nil {
			continue
		}
		info := Info{Name: rec.Reference, Description: "OCI image", Source: SourceOCI, Digest: rec.Digest, Packages: []string{}}
		in, _ := s.pickImage(digestHex(rec.Digest), agentSum)
		if in == nil {
			in, _ = s.pickImage(digestHex(rec.Digest), "")
		}
		if in != nil {
			info.Source, info.Description = in.manifest.Source, in.manifest.Description
			info.Installed = agentSum == "" || in.manifest.AgentSHA256 == agentSum
			info.Version, info.RootfsSize, info.DiskUsage = in.version, in.manifest.Rootfs.Size, in.manifest.Rootfs.DiskUsage
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// withListHint adds where to look when an image cannot be found or
// fetched: the name may have been meant as a catalog name.
func withListHint(err error) error {
	var e *errdefs.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case errdefs.CodeEnvironmentMissing, errdefs.CodeImagePull, errdefs.CodeRegistryAuth:
		list := &errdefs.Next{Hint: " (%s to see the environments available here)", CLI: "pyro env list", Tool: "vm_list_environments"}
		c := *e
		switch {
		case e.Next == nil:
			c.Next = list
		case e.Next.Also == nil:
			next := *e.Next
			next.Also = list
			c.Next = &next
		}
		return &c
	}
	return err
}
