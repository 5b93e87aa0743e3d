package env

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// The final image: base tarball extracted, guest agent and a few /etc files
// added, turned into ext4 by mkfs.ext4 -d, installed as
// environments/<slug>/<version>/{rootfs.ext4,manifest.json}.

const (
	rootfsFile     = "rootfs.ext4"
	agentGuestPath = "sbin/pyro-agent"
	imageHeadroom  = 512 << 20 // free space left for workspaces, on top of 20%
	ext4Block      = 4096
)

// Version scheme: "<debian major>.<UTC build date YYYYMMDD>.<first 8 hex of
// the agent sha256>", with "-N" appended when that directory already exists
// (a second build the same day with the same agent: force pull or repair).
// A version directory is never rewritten: a path always names the same bytes,
// which copy-on-write overlays backed by the image depend on.
var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]+\.[0-9]{8}\.[0-9a-f]{8}(-[0-9]+)?$`) })

func validVersion(v string) bool { return versionRE().MatchString(v) }

func (s *Store) newVersion(e catalogEntry, agentSum string, now time.Time) string {
	base := fmt.Sprintf("%s.%s.%s", debianMajor, now.UTC().Format("20060102"), agentSum[:8])
	v := base
	for n := 2; ; n++ {
		if _, err := os.Lstat(filepath.Join(s.root, "environments", slug(e.Name), v)); os.IsNotExist(err) {
			return v
		}
		v = base + "-" + strconv.Itoa(n)
	}
}

// errBaseCorrupt: the cached base tarball does not match its record.
var errBaseCorrupt = errors.New("base tarball does not match its recorded sha256")

// buildImage makes a new version of e from its base tarball. Caller holds
// the environment lock.
func (s *Store) buildImage(ctx context.Context, e catalogEntry, k KernelInfo, basePath string, base baseRecord, ag agentInfo) (*Environment, error) {
	what := "image " + e.Name
	if err := checkTools(imageTools...); err != nil {
		return nil, err
	}
	start := time.Now()
	s.progress(ctx, Event{Stage: "image", Message: "checking base tarball"})
	sum, _, err := sha256File(ctx, basePath, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, what)
		}
		return nil, errBaseCorrupt
	}
	if sum != base.SHA256 {
		return nil, errBaseCorrupt
	}

	b, r, done, err := s.newToolBuild(ctx, "image-"+slug(e.Name), what)
	if err != nil {
		return nil, err
	}
	defer done()

	tree := filepath.Join(b.dir, "root")
	out := filepath.Join(b.dir, "out")
	rootfs, pkgs, err := s.buildRootfs(ctx, r, what, debianSource{basePath: basePath}, tree, out, ag.path, 0)
	if err != nil {
		return nil, err
	}

	now := time.Now().UTC()
	version := s.newVersion(e, ag.sha256, now)
	final := filepath.Join(s.root, "environments", slug(e.Name), version)
	m := &Manifest{
		SchemaVersion: manifestSchemaVersion,
		Name:          e.Name,
		Version:       version,
		Description:   e.Description,
		CreatedAt:     now,
		Kernel:        k,
		Rootfs:        rootfs,
		AgentSHA256:   ag.sha256,
		RecipeHash:    e.recipeHash(),
		BaseSHA256:    base.SHA256,
		Packages:      pkgs,
		ImageRevision: imageRevision,
		Source:        SourceDebian,
	}
	m.Rootfs.Path = filepath.Join(final, rootfsFile)
	// The manifest goes in last; the directory appears in one rename.
	if err := writeManifest(s.root, out, m); err != nil {
		return nil, buildErr(err, "%s: writing manifest", what)
	}
	if err := fsutil.SyncDir(out); err != nil {
		return nil, buildErr(err, "%s", what)
	}
	if err := s.replaceDir(out, final, b.dir); err != nil {
		return nil, buildErr(err, "%s: installing %s", what, final)
	}
	s.progress(ctx, Event{Stage: "image", Message: fmt.Sprintf("%s %s ready in %s", e.Name, version, time.Since(start).Round(100*time.Millisecond))})
	return &Environment{Manifest: m, Dir: final, KernelPath: m.Kernel.Path, RootfsPath: m.Rootfs.Path}, nil
}

// customizeTree adds what pyro needs to the extracted tree. All access goes
// through os.Root, so a symlink in the tree (an absolute /etc/resolv.conf
// link, say) can never make us write to the host.
func customizeTree(tree, agentPath string) error {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	agent, err := os.Open(agentPath)
	if err != nil {
		return err
	}
	defer agent.Close()
	if err := baseDirs(root); err != nil {
		return err
	}
	if err := replaceFile(root, agentGuestPath, agent, 0o755); err != nil {
		return err
	}
	files := []struct{ name, content string }{
		{"etc/hostname", "pyro\n"},
		{"etc/hosts", "127.0.0.1\tlocalhost pyro\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
		{"etc/resolv.conf", "nameserver 10.0.2.3\n"},
	}
	for _, f := range files {
		if err := replaceFile(root, f.name, strings.NewReader(f.content), 0o644); err != nil {
			return err
		}
	}
	if err := root.Mkdir("workspace", 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := root.Chmod("workspace", 0o755); err != nil {
		return err
	}
	return speedUpLoginShells(root)
}

// baseDirs creates the directories the agent and the kernel expect when an
// image lacks them (a busybox-only image may have nothing but /bin).
func baseDirs(root *os.Root) error {
	dirs := []struct {
		name string
		mode fs.FileMode
	}{
		{"sbin", 0o755}, {"etc", 0o755}, {"root", 0o700}, {"dev", 0o755}, {"proc", 0o555},
		{"sys", 0o555}, {"run", 0o755}, {"tmp", fs.ModeSticky | 0o777},
	}
	for _, d := range dirs {
		if _, err := root.Lstat(d.name); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := root.Mkdir(d.name, d.mode.Perm()); err != nil {
			return err
		}
		if err := root.Chmod(d.name, d.mode); err != nil {
			return err
		}
	}
	return nil
}

// loginShellEdits keep `sh -lc` (how every command runs) from spawning
// programs on each call: under software emulation each exec of a dynamic
// binary costs tens of milliseconds. Behaviour is unchanged: `[ -O / ]` is
// true exactly for root (who owns /), like `[ "$(id -u)" -eq 0 ]`, and mesg
// only matters on a terminal.
var loginShellEdits = []struct{ file, old, new string }{
	{"etc/profile", `if [ "$(id -u)" -eq 0 ]; then`, `if [ -O / ]; then # pyro: no fork of id(1)`},
	{"root/.profile", "mesg n 2> /dev/null || true", "[ -t 0 ] && mesg n 2> /dev/null || true"},
}

func speedUpLoginShells(root *os.Root) error {
	for _, e := range loginShellEdits {
		b, err := root.ReadFile(e.file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		edited := strings.ReplaceAll(string(b), e.old, e.new)
		if edited == string(b) {
			continue
		}
		st, err := root.Stat(e.file)
		if err != nil {
			return err
		}
		if err := replaceFile(root, e.file, strings.NewReader(edited), st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// replaceFile (re)creates name inside root as a regular file owned by root.
func replaceFile(root *os.Root, name string, content io.Reader, perm os.FileMode) error {
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, content); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Chown(0, 0); err != nil && os.Geteuid() == 0 {
		f.Close()
		return err
	}
	return f.Close()
}

// treeUsage estimates the ext4 space a tree needs (4 KiB blocks, one block
// per directory and long symlink, hard links once) and counts its inodes.
func treeUsage(tree string) (bytes, inodes int64) {
	seen := map[uint64]bool{}
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && !info.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		inodes++
		switch {
		case info.Mode().IsRegular():
			bytes += roundUp(info.Size(), ext4Block)
		case info.IsDir():
			bytes += ext4Block
		case info.Mode()&fs.ModeSymlink != 0 && info.Size() >= 60:
			bytes += ext4Block
		}
		return nil
	})
	return bytes, inodes
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

func createSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// agentInfo is the guest agent binary given by the caller.
type agentInfo struct {
	path   string
	sha256 string
}

// errNoAgent: building needs Options.AgentPath.
func errNoAgent() error {
	return errdefs.InvalidArgument("agent_path",
		"the guest agent binary is required to build an environment image (Options.AgentPath is empty)")
}
