package pyro

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// GitToplevel returns the root of the Git checkout dir is in, or "" if none.
func GitToplevel(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// gitTrackedFiles lists the files Git tracks in the checkout at dir.
func gitTrackedFiles(ctx context.Context, dir string) ([]string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"git is not installed: install it with: apt-get install -y git")
	}
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "ls-files", "-z", "--cached")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errdefs.InvalidArgument("seed_path", "%s is not a Git checkout (%s): give a plain directory or archive instead",
			filepath.Clean(dir), strings.TrimSpace(stderr.String()))
	}
	files := []string{}
	for _, f := range bytes.Split(out, []byte{0}) {
		if len(f) > 0 {
			files = append(files, string(f))
		}
	}
	return files, nil
}

// CloneProjectRequest names the Git checkout CloneProject makes.
type CloneProjectRequest struct {
	URL string `json:"url"`           // what git clone accepts
	Ref string `json:"ref,omitempty"` // a branch or tag; "" = the default branch
}

// CloneProject checks out req.Ref of the Git repository at req.URL into a fresh directory under the state dir and
// returns it, for `pyro mcp serve --repo-url`: the project a model's
// workspaces are seeded from. An earlier checkout of the same url and ref is
// replaced, so a restart gets the ref's current commit.
func (c *Client) CloneProject(ctx context.Context, req CloneProjectRequest) (string, error) {
	url, ref := req.URL, req.Ref
	if _, err := exec.LookPath("git"); err != nil {
		return "", errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"git is not installed: install it with: apt-get install -y git")
	}
	sum := sha256.Sum256([]byte(url + "\x00" + ref))
	dir := filepath.Join(c.stateDir, "projects", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".clone-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	args := []string{"clone", "--quiet", "--depth", "1", "--no-tags"}
	if ref != "" {
		args = append(args, "--branch", ref)
	}
	cmd := exec.CommandContext(ctx, "git", append(args, "--", url, tmp)...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"repo-url: cannot clone %s (ref %q): %s; check the URL, the ref and your Git credentials", url, ref, strings.TrimSpace(stderr.String()))
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}
