package wsdiff

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Change is one changed path.
type Change struct {
	Path       string `json:"path"`   // relative to /workspace
	Status     string `json:"status"` // "added", "modified", "deleted"
	Kind       string `json:"kind"`   // "file", "symlink", "dir" (of the current side; of the baseline when deleted)
	Binary     bool   `json:"binary"` // either side is not text (NUL in the first 8 KiB, or invalid UTF-8) or too large to diff
	Diff       string `json:"diff,omitempty"`
	Summary    string `json:"summary,omitempty"`
	ModeChange string `json:"mode_change,omitempty"` // e.g. "100644 -> 100755"
}

// Result is what changed between the baseline and the current tree.
type Result struct {
	Changes  []Change `json:"changes"` // sorted by path
	Added    int      `json:"added"`
	Modified int      `json:"modified"`
	Deleted  int      `json:"deleted"`
	Patch    string   `json:"patch"` // every Diff concatenated: a git-style patch that Plan (or git apply, patch -p1) applies to the baseline
}

const (
	statusAdded    = "added"
	statusModified = "modified"
	statusDeleted  = "deleted"
)

// Compare reads two tar streams (baseline, current) and reports what changed.
//
// Files and symlinks are compared by content (or target) and, for files,
// permission bits; a directory is reported only when it is empty and was
// added or deleted. A path whose kind changed (file, symlink, empty dir) is
// one "modified" change with the current kind.
//
// A regular text file gets Diff: a git-style section ("diff --git a/P b/P",
// mode lines, "---"/"+++" and hunks with 3 lines of context); a mode-only
// change gets the header and mode lines only. Binary and too large files,
// symlinks and kind changes get no Diff, only a Summary, and are not in
// Patch.
func Compare(baseline, current io.Reader, lim Limits) (*Result, error) {
	lim = lim.withDefaults()
	base, err := readTree(baseline, lim, "the baseline")
	if err != nil {
		return nil, err
	}
	cur, err := readTree(current, lim, "the current workspace")
	if err != nil {
		return nil, err
	}
	bv, cv := reportable(base), reportable(cur)
	paths := make([]string, 0, len(bv)+len(cv))
	for p := range bv {
		paths = append(paths, p)
	}
	for p := range cv {
		if bv[p] == nil {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	res := &Result{Changes: []Change{}}
	var patch strings.Builder
	for _, p := range paths {
		c, ok := compareEntry(p, bv[p], cv[p], lim)
		if !ok {
			continue
		}
		switch c.Status {
		case statusAdded:
			res.Added++
		case statusDeleted:
			res.Deleted++
		default:
			res.Modified++
		}
		patch.WriteString(c.Diff)
		res.Changes = append(res.Changes, c)
	}
	res.Patch = patch.String()
	return res, nil
}

// reportable keeps the files, symlinks and empty directories of a tree.
func reportable(t tree) tree {
	nonEmpty := map[string]bool{}
	for p := range t {
		for i := 0; i < len(p); i++ {
			if p[i] == '/' {
				nonEmpty[p[:i]] = true
			}
		}
	}
	out := tree{}
	for p, e := range t {
		if e.kind != kindDir || !nonEmpty[p] {
			out[p] = e
		}
	}
	return out
}

// compareEntry compares one path; ok is false when it did not change.
func compareEntry(p string, b, c *entry, lim Limits) (Change, bool) {
	switch {
	case b == nil:
		return oneSided(p, statusAdded, c, lim), true
	case c == nil:
		return oneSided(p, statusDeleted, b, lim), true
	case b.kind != c.kind:
		return Change{Path: p, Status: statusModified, Kind: c.kind,
			Summary: fmt.Sprintf("%s replaced by %s", describe(b), describe(c))}, true
	}
	ch := Change{Path: p, Status: statusModified, Kind: c.kind}
	switch c.kind {
	case kindDir:
		return ch, false
	case kindSymlink:
		if b.target == c.target {
			return ch, false
		}
		ch.Summary = fmt.Sprintf("symlink target changed: %s -> %s", b.target, c.target)
		return ch, true
	}
	same := sameContent(b, c)
	if same && b.mode == c.mode {
		return ch, false
	}
	ch.Binary = !textual(b) || !textual(c)
	if b.mode != c.mode {
		ch.ModeChange = gitMode(b.mode) + " -> " + gitMode(c.mode)
	}
	switch {
	case same:
		ch.Diff, _, _ = fileDiff(p, &side{b.content, b.mode}, &side{c.content, c.mode})
		ch.Summary = "mode changed: " + ch.ModeChange
	case b.large || c.large:
		ch.Summary = fmt.Sprintf("large file changed (%d -> %d bytes; files over %d bytes are not diffed)", b.size, c.size, lim.MaxTextBytes)
	case ch.Binary:
		ch.Summary = fmt.Sprintf("binary file changed (%d -> %d bytes)", b.size, c.size)
	default:
		var added, removed int
		ch.Diff, added, removed = fileDiff(p, &side{b.content, b.mode}, &side{c.content, c.mode})
		ch.Summary = fmt.Sprintf("%s added, %d removed", lines(added), removed)
	}
	return ch, true
}

// oneSided describes an added or deleted entry e.
func oneSided(p, status string, e *entry, lim Limits) Change {
	ch := Change{Path: p, Status: status, Kind: e.kind}
	switch e.kind {
	case kindDir:
		ch.Summary = "empty directory " + status
	case kindSymlink:
		ch.Summary = fmt.Sprintf("symlink %s: -> %s", status, e.target)
	default:
		ch.Binary = !textual(e)
		switch {
		case e.large:
			ch.Summary = fmt.Sprintf("large file %s (%d bytes; files over %d bytes are not diffed)", status, e.size, lim.MaxTextBytes)
		case ch.Binary:
			ch.Summary = fmt.Sprintf("binary file %s (%d bytes)", status, e.size)
		case status == statusAdded:
			var n int
			ch.Diff, n, _ = fileDiff(p, nil, &side{e.content, e.mode})
			ch.Summary = fmt.Sprintf("new text file (%s)", lines(n))
		default:
			var n int
			ch.Diff, _, n = fileDiff(p, &side{e.content, e.mode}, nil)
			ch.Summary = fmt.Sprintf("text file deleted (%s)", lines(n))
		}
	}
	return ch
}

func describe(e *entry) string {
	switch e.kind {
	case kindDir:
		return "empty directory"
	case kindSymlink:
		return "symlink to " + e.target
	}
	return "file"
}

func textual(e *entry) bool { return !e.large && isText(e.content) }

func sameContent(b, c *entry) bool {
	if b.size != c.size || b.large != c.large {
		return false
	}
	if b.large {
		return b.sum == c.sum
	}
	return bytes.Equal(b.content, c.content)
}

func lines(n int) string {
	if n == 1 {
		return "1 line"
	}
	return fmt.Sprintf("%d lines", n)
}
