package env

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// rootSource is the seam between where an environment's root filesystem
// comes from (Debian packages through mmdebstrap, an OCI image; later a
// pyro artifact or an env build) and the one image builder below, which
// adds the agent as PID 1 and makes the ext4 image.
type rootSource interface {
	// fill puts the root filesystem into tree, an empty directory.
	fill(ctx context.Context, r *runner, tree string) error
	// packages lists "name=version" of what is installed in tree, or nil
	// when the source has no package database pyro reads.
	packages(ctx context.Context, r *runner, tree string) ([]string, error)
}

// debianSource is a cached mmdebstrap tarball.
type debianSource struct{ basePath string }

func (d debianSource) fill(ctx context.Context, r *runner, tree string) error {
	return r.run(ctx, filepath.Dir(tree), nil, "tar", "--extract", "--file="+d.basePath, "--directory="+tree,
		"--numeric-owner", "--same-owner", "--preserve-permissions", "--xattrs", "--xattrs-include=*")
}

func (d debianSource) packages(ctx context.Context, r *runner, tree string) ([]string, error) {
	var pkgs []string
	if err := r.run(ctx, filepath.Dir(tree), func(line string) {
		if strings.Contains(line, "=") && !strings.ContainsAny(line, " \t") {
			pkgs = append(pkgs, line)
		}
	}, "dpkg-query", "--admindir="+filepath.Join(tree, "var/lib/dpkg"), "-W", "-f=${Package}=${Version}\n"); err != nil {
		return nil, err
	}
	sort.Strings(pkgs)
	return pkgs, nil
}

// buildRootfs is the image builder: src fills tree, the agent and pyro's
// /etc files go in, and mkfs.ext4 -d turns the tree into out/rootfs.ext4
// (sparse, read-only). diskSize 0 sizes the image to its content plus
// headroom. The returned Path is the file in out; the caller renames out.
func (s *Store) buildRootfs(ctx context.Context, r *runner, what string, src rootSource, tree, out, agentPath string, diskSize int64) (RootfsInfo, []string, error) {
	for _, d := range []string{tree, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return RootfsInfo{}, nil, buildErr(err, "%s", what)
		}
	}
	s.progress(ctx, Event{Stage: "image", Message: "unpacking the root filesystem"})
	if err := src.fill(ctx, r, tree); err != nil {
		return RootfsInfo{}, nil, err
	}
	s.progress(ctx, Event{Stage: "image", Message: "installing guest agent"})
	if err := customizeTree(tree, agentPath); err != nil {
		return RootfsInfo{}, nil, buildErr(err, "%s: customizing the tree", what)
	}
	pkgs, err := src.packages(ctx, r, tree)
	if err != nil {
		return RootfsInfo{}, nil, err
	}

	used, files := treeUsage(tree)
	size := roundUp(used+used/5+imageHeadroom, 1<<20)
	if diskSize > 0 {
		need := roundUp(used+used/10+(16<<20), 1<<20)
		if diskSize < need {
			return RootfsInfo{}, nil, errdefs.InvalidArgument("disk_size",
				"%d MiB is too small for %s: its files need at least %d MiB", diskSize>>20, what, need>>20)
		}
		size = roundUp(diskSize, 1<<20)
	}
	img := filepath.Join(out, rootfsFile)
	if err := createSparse(img, size); err != nil {
		return RootfsInfo{}, nil, buildErr(err, "%s", what)
	}
	args := []string{"-q", "-F", "-t", "ext4", "-L", "pyro-root", "-m", "0", "-d", tree, "-E", "root_owner=0:0"}
	if need := files*2 + 16384; need > size/16384 {
		args = append(args, "-N", strconv.FormatInt(need, 10))
	}
	s.progress(ctx, Event{Stage: "image", Message: fmt.Sprintf("creating ext4 image (%d MiB)", size>>20)})
	if err := r.run(ctx, filepath.Dir(out), nil, "mkfs.ext4", append(args, img)...); err != nil {
		return RootfsInfo{}, nil, err
	}
	if err := fsutil.SyncFile(img); err != nil {
		return RootfsInfo{}, nil, buildErr(err, "%s: syncing image", what)
	}
	// Shared by every VM as a read-only backing file.
	if err := os.Chmod(img, 0o444); err != nil {
		return RootfsInfo{}, nil, buildErr(err, "%s", what)
	}
	s.progress(ctx, Event{Stage: "image", Message: "hashing image"})
	rsum, rsize, err := sha256File(ctx, img, func(done, total int64) {
		s.progress(ctx, Event{Stage: "image", Message: "hashing image", Done: done, Total: total})
	})
	if err != nil {
		if ctx.Err() != nil {
			return RootfsInfo{}, nil, ctxError(ctx, what)
		}
		return RootfsInfo{}, nil, buildErr(err, "%s: hashing image", what)
	}
	return RootfsInfo{Path: img, SHA256: rsum, Size: rsize, DiskUsage: fsutil.DiskUsage(img)}, pkgs, nil
}
