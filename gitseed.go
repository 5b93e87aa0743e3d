package pyro

import (
	"bytes"
	"context"
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
