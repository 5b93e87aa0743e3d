package env

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// kernelFragment is merged on top of `make tinyconfig`.
//
//go:embed kernel/pyro.config
var kernelFragment []byte

const (
	kernelSourcePackage = "linux-source-6.1"
	kernelSourceTarball = "/usr/src/linux-source-6.1.tar.xz"
	kernelSourceDir     = "linux-source-6.1" // top directory inside the tarball
	// kernelCompileEstimate is the number of CC/LD lines of a build of this
	// config (measured: 1024), the Total of the "kernel" progress events.
	kernelCompileEstimate = 1030
)

// KernelInfo describes a built guest kernel (uncompressed vmlinux, PVH entry).
type KernelInfo struct {
	Path       string `json:"path"`
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	Release    string `json:"release"`
	ConfigHash string `json:"config_hash"`
}

// kernelRecord is kernels/<hash>/kernel.json.
type kernelRecord struct {
	SHA256        string    `json:"sha256"`
	Size          int64     `json:"size"`
	Release       string    `json:"release"`
	ConfigHash    string    `json:"config_hash"`
	SourcePackage string    `json:"source_package"`
	SourceVersion string    `json:"source_version"`
	BuiltAt       time.Time `json:"built_at"`
}

// kernelConfigHash is the kernel's identity: the fragment and the exact
// Debian version of the source package.
func kernelConfigHash(fragment []byte, sourceVersion string) string {
	h := sha256.New()
	h.Write(fragment)
	h.Write([]byte(sourceVersion))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// kernelSourceVersion asks dpkg for the installed linux-source version.
func kernelSourceVersion(ctx context.Context) (string, error) {
	if err := checkTools(toolDpkgQuery, toolKernelSrc); err != nil {
		return "", err
	}
	dq, _ := lookTool("dpkg-query")
	out, err := exec.CommandContext(ctx, dq, "-W", "-f=${Version}", kernelSourcePackage).Output()
	v := strings.TrimSpace(string(out))
	if err != nil || v == "" {
		if ctx.Err() != nil {
			return "", ctxError(ctx, "reading the kernel source version")
		}
		return "", errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"the Debian package %s is not installed: install it with: apt-get install -y %s",
			kernelSourcePackage, kernelSourcePackage)
	}
	return v, nil
}

// currentKernelHash is the config hash Kernel() would build now.
func (s *Store) currentKernelHash(ctx context.Context) (hash, sourceVersion string, err error) {
	v, err := s.kernelVersionFn(ctx)
	if err != nil {
		return "", "", err
	}
	return kernelConfigHash(kernelFragment, v), v, nil
}

func (s *Store) kernelDir(hash string) string { return filepath.Join(s.root, "kernels", hash) }

// cachedKernel loads kernels/<hash> if present and of the recorded size.
func (s *Store) cachedKernel(hash string) (KernelInfo, bool) {
	dir := s.kernelDir(hash)
	var rec kernelRecord
	if err := readJSON(filepath.Join(dir, "kernel.json"), &rec); err != nil {
		return KernelInfo{}, false
	}
	k := KernelInfo{Path: filepath.Join(dir, "vmlinux"), SHA256: rec.SHA256, Size: rec.Size, Release: rec.Release, ConfigHash: hash}
	if rec.ConfigHash != hash || fileSize(k.Path) != rec.Size {
		return k, false
	}
	return k, true
}

// newestCachedKernel is the fallback when the source package is gone but a
// kernel was built before.
func (s *Store) newestCachedKernel() (KernelInfo, bool) {
	entries, _ := os.ReadDir(filepath.Join(s.root, "kernels"))
	var best KernelInfo
	var bestTime time.Time
	found := false
	for _, e := range entries {
		k, ok := s.cachedKernel(e.Name())
		if !ok {
			continue
		}
		st, err := os.Stat(k.Path)
		if err == nil && (!found || st.ModTime().After(bestTime)) {
			best, bestTime, found = k, st.ModTime(), true
		}
	}
	return best, found
}

// Kernel builds the guest kernel for the embedded config, or reuses the
// cached one. Without the source package it falls back to the newest kernel
// already in the cache.
func (s *Store) Kernel(ctx context.Context) (KernelInfo, error) {
	if err := s.init(); err != nil {
		return KernelInfo{}, err
	}
	return s.ensureKernel(ctx, false)
}

// ensureKernel returns the current kernel, building it if needed. With
// verify, a cached kernel is re-hashed and rebuilt when it does not match
// its record.
func (s *Store) ensureKernel(ctx context.Context, verify bool) (KernelInfo, error) {
	hash, version, err := s.currentKernelHash(ctx)
	if err != nil {
		if errdefs.CodeOf(err) == errdefs.CodeHostToolMissing {
			if k, ok := s.newestCachedKernel(); ok {
				return k, nil
			}
			if k, ok, perr := s.publishedKernel(ctx, err); ok {
				return k, perr
			}
		}
		return KernelInfo{}, err
	}
	if k, ok := s.cachedKernel(hash); ok && !verify {
		return k, nil
	}
	unlock, err := acquireLock(ctx, s.lockPath("kernel-"+hash), func() {
		s.progress(ctx, Event{Stage: "kernel", Message: "waiting for another pyro process building the guest kernel"})
	})
	if err != nil {
		return KernelInfo{}, err
	}
	defer unlock()
	if k, ok := s.cachedKernel(hash); ok {
		if !verify {
			return k, nil
		}
		good, err := s.kernelIntact(ctx, k)
		if err != nil {
			return KernelInfo{}, err
		}
		if good {
			return k, nil
		}
		s.progress(ctx, Event{Stage: "verify", Message: "guest kernel " + hash + " is corrupt: rebuilding it"})
	}
	return s.buildKernel(ctx, hash, version)
}

// kernelIntact re-hashes a kernel against its record.
func (s *Store) kernelIntact(ctx context.Context, k KernelInfo) (bool, error) {
	s.progress(ctx, Event{Stage: "verify", Message: "checking guest kernel " + k.ConfigHash})
	sum, _, err := sha256File(ctx, k.Path, nil)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctxError(ctx, "verifying the guest kernel")
		}
		return false, nil
	}
	return sum == k.SHA256, nil
}

func kernelJobs() int {
	if v := os.Getenv("PYRO_KERNEL_BUILD_JOBS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return runtime.NumCPU()
}

// buildKernel builds into a temp dir and renames kernels/<hash> into place.
// Caller holds the kernel lock.
func (s *Store) buildKernel(ctx context.Context, hash, version string) (KernelInfo, error) {
	if s.compileKernelFn == nil {
		if runtime.GOARCH != "amd64" {
			return KernelInfo{}, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeEnvironmentBuild,
				"the guest kernel config targets x86_64; building it on %s is not supported", runtime.GOARCH)
		}
		if err := checkTools(kernelTools...); err != nil {
			return KernelInfo{}, err
		}
	}
	b, err := s.newBuildDir(ctx, "kernel-"+hash)
	if err != nil {
		return KernelInfo{}, err
	}
	defer b.remove()
	start := time.Now()
	compile := s.compileKernelFn
	if compile == nil {
		compile = s.compileKernel
	}
	vmlinux, release, err := compile(ctx, b.dir)
	if err != nil {
		return KernelInfo{}, err
	}
	out := filepath.Join(b.dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return KernelInfo{}, buildErr(err, "kernel build")
	}
	dst := filepath.Join(out, "vmlinux")
	if err := fsutil.CopyFile(vmlinux, dst, 0o644); err != nil {
		return KernelInfo{}, buildErr(err, "kernel build: copying vmlinux")
	}
	sum, size, err := sha256File(ctx, dst, nil)
	if err != nil {
		return KernelInfo{}, buildErr(err, "kernel build: hashing vmlinux")
	}
	rec := kernelRecord{SHA256: sum, Size: size, Release: release, ConfigHash: hash,
		SourcePackage: kernelSourcePackage, SourceVersion: version, BuiltAt: time.Now().UTC()}
	if err := fsutil.WriteJSONAtomic(filepath.Join(out, "kernel.json"), rec, 0o644); err != nil {
		return KernelInfo{}, buildErr(err, "kernel build: writing kernel.json")
	}
	final := s.kernelDir(hash)
	if err := s.replaceDir(out, final, b.dir); err != nil {
		return KernelInfo{}, buildErr(err, "kernel build: installing %s", final)
	}
	s.progress(ctx, Event{Stage: "kernel", Message: fmt.Sprintf("guest kernel %s built in %s", release, time.Since(start).Round(time.Second)),
		Done: kernelCompileEstimate, Total: kernelCompileEstimate})
	k, ok := s.cachedKernel(hash)
	if !ok {
		return KernelInfo{}, buildErr(errors.New("installed kernel failed its check"), "kernel build")
	}
	return k, nil
}

// replaceDir renames src to dst; an existing dst is first moved into
// scratch (a build dir, deleted by the caller).
func (s *Store) replaceDir(src, dst, scratch string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		if err := os.Rename(dst, filepath.Join(scratch, "old-"+filepath.Base(dst))); err != nil {
			return err
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dst))
}

// compileKernel extracts the Debian kernel source into dir and builds
// vmlinux: tinyconfig + fragment + olddefconfig, then make vmlinux.
func (s *Store) compileKernel(ctx context.Context, dir string) (vmlinux, release string, err error) {
	r, err := newRunner("kernel build", dir, s.logsDir(),
		toolEnv("TMPDIR="+dir, "KBUILD_BUILD_USER=pyro", "KBUILD_BUILD_HOST=pyro"))
	if err != nil {
		return "", "", err
	}
	defer r.close()
	src := filepath.Join(dir, kernelSourceDir)
	frag := filepath.Join(dir, "pyro.config")
	if err := os.WriteFile(frag, kernelFragment, 0o644); err != nil {
		return "", "", buildErr(err, "kernel build")
	}

	s.progress(ctx, Event{Stage: "kernel", Message: "extracting " + kernelSourceTarball})
	if err := r.run(ctx, dir, nil, "tar", "-xf", kernelSourceTarball, "-C", dir, "--no-same-owner"); err != nil {
		return "", "", err
	}
	s.progress(ctx, Event{Stage: "kernel", Message: "configuring (tinyconfig + pyro.config)"})
	for _, step := range [][]string{
		{"make", "tinyconfig"},
		{filepath.Join(src, "scripts/kconfig/merge_config.sh"), "-m", ".config", frag},
		{"make", "olddefconfig"},
	} {
		if err := r.run(ctx, src, nil, step[0], step[1:]...); err != nil {
			return "", "", err
		}
	}
	dotconfig, err := os.ReadFile(filepath.Join(src, ".config"))
	if err != nil {
		return "", "", buildErr(err, "kernel build: reading .config")
	}
	if lost := lostOptions(kernelFragment, dotconfig); len(lost) > 0 {
		r.logf("options of pyro.config not in the final .config: %s", strings.Join(lost, " "))
		return "", "", errdefs.New(errdefs.ErrInternal, errdefs.CodeEnvironmentBuild,
			"kernel build: %d option(s) of pyro.config did not survive olddefconfig (%s): the kernel source %s does not match the fragment",
			len(lost), strings.Join(lost, ", "), kernelSourcePackage)
	}

	jobs := kernelJobs()
	s.progress(ctx, Event{Stage: "kernel", Message: fmt.Sprintf("compiling vmlinux with %d jobs", jobs), Total: kernelCompileEstimate})
	var done int64
	err = r.run(ctx, src, func(line string) {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "CC" || f[0] == "LD") {
			done++
			total := int64(kernelCompileEstimate)
			if done > total {
				total = done
			}
			s.progress(ctx, Event{Stage: "kernel", Message: f[1], Done: done, Total: total})
		}
	}, "make", "-j"+strconv.Itoa(jobs), "vmlinux")
	if err != nil {
		return "", "", err
	}
	if err := r.run(ctx, src, func(line string) { release = strings.TrimSpace(line) }, "make", "-s", "kernelrelease"); err != nil {
		return "", "", err
	}
	return filepath.Join(src, "vmlinux"), release, nil
}

// lostOptions lists fragment lines the final .config does not honour.
func lostOptions(fragment, dotconfig []byte) []string {
	have := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(dotconfig))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, ok := strings.CutPrefix(line, "# "); ok && strings.HasSuffix(k, " is not set") {
			have[strings.TrimSuffix(k, " is not set")] = "n"
		} else if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			have[k] = v
		}
	}
	var lost []string
	sc = bufio.NewScanner(bytes.NewReader(fragment))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, want, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		got, present := have[k]
		if want == "n" {
			if present && got != "n" {
				lost = append(lost, line)
			}
			continue
		}
		if got != want {
			lost = append(lost, line)
		}
	}
	sort.Strings(lost)
	return lost
}
