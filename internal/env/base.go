package env

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/fsutil"
)

// The base of an environment is mmdebstrap's output as a tarball, cached as
// bases/<slug>-<recipe hash>.tar with a sidecar .json (sha256, size). The
// final image is rebuilt from it without any download when only the guest
// agent (or the kernel) changes.

// defaultMirrors are used unless PYRO_DEBIAN_MIRROR names another Debian
// mirror (the security archive is then left out, as most mirrors lack it).
var defaultMirrors = []string{
	"deb http://deb.debian.org/debian " + debianSuite + " main",
	"deb http://deb.debian.org/debian " + debianSuite + "-updates main",
	"deb http://deb.debian.org/debian-security " + debianSuite + "-security main",
}

func mirrors() []string {
	if m := strings.TrimSpace(os.Getenv("PYRO_DEBIAN_MIRROR")); m != "" {
		return []string{
			"deb " + m + " " + debianSuite + " main",
			"deb " + m + " " + debianSuite + "-updates main",
		}
	}
	return defaultMirrors
}

// mmdebstrapArgs are the options that define the tree (hashed into the
// recipe); the suite, output and mirrors are appended at run time.
func (e catalogEntry) mmdebstrapArgs() []string {
	return []string{
		// unshare mode as root: a private mount namespace, so a killed
		// build cannot leak /proc or /dev mounts on the host.
		"--mode=unshare",
		"--variant=minbase",
		"--format=tar",
		"--include=" + strings.Join(e.Include, ","),
		"--aptopt=Acquire::Retries \"3\"",
		"--aptopt=APT::Install-Recommends \"false\"",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/lintian/*",
	}
}

type baseRecord struct {
	Name       string    `json:"name"`
	RecipeHash string    `json:"recipe_hash"`
	SHA256     string    `json:"sha256"`
	Size       int64     `json:"size"`
	CreatedAt  time.Time `json:"created_at"`
	Args       []string  `json:"args"`
	Mirrors    []string  `json:"mirrors"`
}

func (s *Store) basePaths(e catalogEntry) (tarPath, recPath string) {
	dir := filepath.Join(s.root, "bases")
	return filepath.Join(dir, e.baseKey()+".tar"), filepath.Join(dir, e.baseKey()+".json")
}

// cachedBase returns the record of a present base tarball (cheap check: the
// sidecar exists and the size matches).
func (s *Store) cachedBase(e catalogEntry) (baseRecord, bool) {
	tarPath, recPath := s.basePaths(e)
	var rec baseRecord
	if err := readJSON(recPath, &rec); err != nil {
		return rec, false
	}
	if rec.RecipeHash != e.recipeHash() || rec.Size != fileSize(tarPath) {
		return rec, false
	}
	return rec, true
}

// ensureBase returns the base tarball of e, running mmdebstrap when it is not
// cached (or always when force).
func (s *Store) ensureBase(ctx context.Context, e catalogEntry, force bool) (string, baseRecord, error) {
	started := time.Now()
	tarPath, _ := s.basePaths(e)
	if !force {
		if rec, ok := s.cachedBase(e); ok {
			return tarPath, rec, nil
		}
	}
	unlock, err := acquireLock(ctx, s.lockPath("base-"+e.baseKey()), func() {
		s.progress(ctx, Event{Stage: "debootstrap", Message: "waiting for another pyro process building the " + e.Name + " base"})
	})
	if err != nil {
		return "", baseRecord{}, err
	}
	defer unlock()
	if rec, ok := s.cachedBase(e); ok && (!force || rec.CreatedAt.After(started)) {
		// Built meanwhile by whoever held the lock (for force: after we asked).
		return tarPath, rec, nil
	}
	return s.buildBase(ctx, e)
}

func (s *Store) buildBase(ctx context.Context, e catalogEntry) (string, baseRecord, error) {
	if err := checkTools(baseTools...); err != nil {
		return "", baseRecord{}, err
	}
	tarPath, recPath := s.basePaths(e)
	what := "debootstrap " + e.Name
	b, r, done, err := s.newToolBuild(ctx, "base-"+slug(e.Name), what)
	if err != nil {
		return "", baseRecord{}, err
	}
	defer done()

	start := time.Now()
	s.progress(ctx, Event{Stage: "debootstrap", Message: "bootstrapping " + e.Name + " (" + strings.Join(e.Include, ", ") + ")"})
	out := filepath.Join(b.dir, "base.tar")
	args := append(e.mmdebstrapArgs(), debianSuite, out)
	args = append(args, mirrors()...)
	err = r.run(ctx, b.dir, func(line string) {
		if msg, ok := strings.CutPrefix(line, "I: "); ok {
			s.progress(ctx, Event{Stage: "debootstrap", Message: msg})
		} else if (strings.HasPrefix(line, "W: ") && !strings.Contains(line, "unsandboxed")) || strings.HasPrefix(line, "E: ") {
			s.progress(ctx, Event{Stage: "debootstrap", Message: line})
		}
	}, "mmdebstrap", args...)
	if err != nil {
		return "", baseRecord{}, err
	}
	if err := fsutil.SyncFile(out); err != nil {
		return "", baseRecord{}, buildErr(err, "%s: syncing tarball", what)
	}
	sum, size, err := sha256File(ctx, out, nil)
	if err != nil {
		if ctx.Err() != nil {
			return "", baseRecord{}, ctxError(ctx, what)
		}
		return "", baseRecord{}, buildErr(err, "%s: hashing tarball", what)
	}
	rec := baseRecord{
		Name: e.Name, RecipeHash: e.recipeHash(), SHA256: sum, Size: size,
		CreatedAt: time.Now().UTC(), Args: e.mmdebstrapArgs(), Mirrors: mirrors(),
	}
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		return "", baseRecord{}, buildErr(err, "%s", what)
	}
	// Record first out, tarball in, record back: a crash in between leaves
	// a tarball without record, which counts as absent.
	if err := os.Remove(recPath); err != nil && !os.IsNotExist(err) {
		return "", baseRecord{}, buildErr(err, "%s", what)
	}
	if err := os.Rename(out, tarPath); err != nil {
		return "", baseRecord{}, buildErr(err, "%s: installing tarball", what)
	}
	if err := fsutil.WriteJSONAtomic(recPath, rec, 0o644); err != nil {
		return "", baseRecord{}, buildErr(err, "%s: writing record", what)
	}
	s.progress(ctx, Event{Stage: "debootstrap", Message: "base of " + e.Name + " ready in " + time.Since(start).Round(time.Second).String()})
	return tarPath, rec, nil
}
