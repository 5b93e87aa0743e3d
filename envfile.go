package pyro

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// ProjectEnvFile is where a repository keeps its environment file, relative
// to the project's root: workspace create seeded from a directory that has
// one (and mcp serve's project) uses it when no environment is named.
const ProjectEnvFile = ".pyro/environment.toml"

// maxEnvFileBytes bounds an environment file.
const maxEnvFileBytes = 64 << 10

// EnvironmentFile is a parsed environment file:
//
//	# .pyro/environment.toml
//	from = "debian:12"          # catalog name, image reference or built environment
//	network = true              # egress for the steps (default false)
//	disk_size_mib = 4096        # optional; default the base's size
//	steps = [
//	  "apt-get update",
//	  "apt-get install -y --no-install-recommends nodejs",
//	]
//
// Its environment is named "envfile-<first 12 hex of the sha256 of the
// file's bytes>", so an unchanged file builds once and every later use is a
// cache hit; any edit is a new environment.
type EnvironmentFile struct {
	Path     string   `json:"path"`
	Name     string   `json:"name"`
	Digest   string   `json:"digest"` // sha256 of the file's bytes
	From     string   `json:"from"`
	Steps    []string `json:"steps"`
	Network  bool     `json:"network"`
	DiskSize int64    `json:"disk_size,omitempty"`
}

type envFileDoc struct {
	From        string   `toml:"from"`
	Steps       []string `toml:"steps"`
	Network     bool     `toml:"network"`
	DiskSizeMiB int64    `toml:"disk_size_mib"`
}

// LoadEnvironmentFile reads and checks an environment file (a host path:
// on a confined client, beneath its roots).
func (c *Client) LoadEnvironmentFile(path string) (*EnvironmentFile, error) {
	src, err := c.host.OpenSource(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if src.File == nil {
		return nil, errdefs.InvalidArgument("env_file", "%s is a directory: name the file (e.g. %s)", src.Path, filepath.Join(src.Path, ProjectEnvFile))
	}
	data, err := io.ReadAll(io.LimitReader(src.File, maxEnvFileBytes+1))
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "env_file: reading %s", src.Path)
	}
	if len(data) > maxEnvFileBytes {
		return nil, errdefs.InvalidArgument("env_file", "%s is larger than %d KiB", src.Path, maxEnvFileBytes>>10)
	}
	return parseEnvFile(src.Path, data)
}

func parseEnvFile(path string, data []byte) (*EnvironmentFile, error) {
	var doc envFileDoc
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	if err != nil {
		return nil, errdefs.InvalidArgument("env_file", "%s is not valid TOML: %v", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		return nil, errdefs.InvalidArgument("env_file", "%s: unknown keys %s (known: from, steps, network, disk_size_mib)", path, strings.Join(keys, ", "))
	}
	if doc.DiskSizeMiB < 0 || doc.DiskSizeMiB > 1<<20 {
		return nil, errdefs.InvalidArgument("env_file", "%s: disk_size_mib %d is out of range [0, %d]", path, doc.DiskSizeMiB, 1<<20)
	}
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	f := &EnvironmentFile{Path: path, Name: "envfile-" + h[:12], Digest: "sha256:" + h,
		From: doc.From, Steps: doc.Steps, Network: doc.Network, DiskSize: doc.DiskSizeMiB << 20}
	if f.From == "" {
		return nil, errdefs.InvalidArgument("env_file", "%s: from is missing: name the base, e.g. from = \"debian:12\"", path)
	}
	if len(f.Steps) == 0 {
		return nil, errdefs.InvalidArgument("env_file", "%s: steps is missing or empty: e.g. steps = [\"apt-get update\"]", path)
	}
	return f, nil
}

// FindProjectEnvFile returns dir's environment file (ProjectEnvFile) when
// there is one, else "". Only a regular file counts.
func FindProjectEnvFile(dir string) string {
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, ProjectEnvFile)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p
	}
	return ""
}

// resolveEnvFile applies the precedence of a workspace's environment: the
// named Environment, else EnvFile, else the seed directory's own
// ProjectEnvFile; an environment file is built (or found cached) here.
func (c *Client) resolveEnvFile(ctx context.Context, req *CreateWorkspaceRequest) error {
	switch {
	case req.Environment != "" && req.EnvFile != "":
		return errdefs.InvalidArgument("env_file", "give an environment or an environment file, not both")
	case req.Environment != "":
		return nil
	case req.EnvFile == "" && req.SeedPath != "":
		if st, err := os.Stat(req.SeedPath); err == nil && st.IsDir() {
			req.EnvFile = FindProjectEnvFile(req.SeedPath)
		}
	}
	if req.EnvFile == "" {
		return nil
	}
	res, err := c.BuildEnvironment(ctx, BuildEnvironmentRequest{EnvFile: req.EnvFile})
	if err != nil {
		return err
	}
	req.Environment = res.Environment
	return nil
}
