package wsdiff

import (
	"path"
	"slices"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// workspaceRoot is where the workspace lives in the guest; absolute paths
// under it are accepted and made relative.
const workspaceRoot = "/workspace"

// cleanPath is the one check every path goes through (tar entry names and
// patch file names): it strips a leading "/workspace/", refuses other
// absolute paths and any ".." element (even one that would stay inside), a
// NUL byte, and a path naming the workspace root itself, and returns the
// cleaned, relative, slash-separated form.
func cleanPath(p string) (string, error) {
	orig := p
	if p == "" {
		return "", errdefs.InvalidArgument("path", "a path is empty; name a file relative to %s", workspaceRoot)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", errdefs.InvalidArgument("path", "path %q has a NUL byte", orig)
	}
	if strings.HasPrefix(p, workspaceRoot+"/") {
		p = strings.TrimLeft(p[len(workspaceRoot):], "/")
	} else if p == workspaceRoot {
		p = ""
	} else if strings.HasPrefix(p, "/") {
		return "", outside("path %q is outside the workspace; use a path relative to %s (or under it)", orig, workspaceRoot)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", outside("path %q has a \"..\" element and may point outside the workspace; use a plain relative path", orig)
		}
	}
	c := path.Clean(p)
	if c == "." || c == "" {
		return "", errdefs.InvalidArgument("path", "path %q names the workspace root, not a file", orig)
	}
	return c, nil
}

// Paths lists the relative paths Plan will read through its FileSource, so
// the caller can fetch them first: the old name of every file the patch
// changes, deletes, renames or copies, and the new name of every file it
// creates (including rename and copy targets), which Plan reads to make sure
// it does not exist yet. Sorted, without duplicates. It fails like Plan on a
// patch that cannot be parsed or names a path outside the workspace.
func Paths(patch string) ([]string, error) {
	ops, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, op := range ops {
		add(op.oldPath)
		add(op.newPath)
	}
	slices.Sort(out)
	return out, nil
}
