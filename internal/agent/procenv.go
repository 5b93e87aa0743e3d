//go:build linux

package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// defaultEnv is what every command starts from; PID 1 has no useful env of
// its own to inherit.
var defaultEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=dumb",
	"LANG=C.UTF-8",
	"USER=root",
}

// loadImageEnv overrides defaultEnv with the image config's Env (OCI
// environments); called once at start, before any command runs.
func loadImageEnv(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var kvs []string
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && k != "" {
			kvs = append(kvs, line)
		}
	}
	if env, err := buildEnv(kvs); err == nil {
		defaultEnv = env
	}
}

// buildEnv applies KEY=VALUE entries over defaultEnv, replacing by key.
func buildEnv(extra []string) ([]string, error) {
	env := slices.Clone(defaultEnv)
	for _, kv := range extra {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("env entry %q is not KEY=VALUE", kv)
		}
		i := slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
		if i >= 0 {
			env[i] = kv
		} else {
			env = append(env, kv)
		}
	}
	return env, nil
}

// lookPath resolves file against the command's PATH (not the agent's).
// Relative PATH entries are taken relative to the command's cwd.
func lookPath(file string, env []string, cwd string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	var path string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cwd, dir)
		}
		p := filepath.Join(dir, file)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in PATH", file)
}
