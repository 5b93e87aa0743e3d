package wsdiff

import (
	"os"
	"strconv"
	"strings"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

const devNull = "/dev/null"

// fileOp is one file section of a patch, with validated workspace paths.
type fileOp struct {
	oldPath string // "" when the file is created
	newPath string // "" when the file is deleted
	isCopy  bool
	newMode os.FileMode // permission bits to set; 0: keep (or 0644 for a new file)
	frags   []*gitdiff.TextFragment
}

func (o *fileOp) isNew() bool    { return o.oldPath == "" }
func (o *fileOp) isDelete() bool { return o.newPath == "" }

// name is the path used in messages.
func (o *fileOp) name() string {
	if o.newPath != "" {
		return o.newPath
	}
	return o.oldPath
}

// parsePatch parses a unified diff with go-gitdiff and validates its paths.
//
// go-gitdiff strips the a/ b/ prefixes of git-style sections itself, but
// keeps the names of plain "---"/"+++" sections as written and collapses them
// into one. To strip those right, the patch is cut before every "diff --git"
// line (such a line can never be hunk content, so every one starts a git
// section) and each piece parsed alone: the first file of a piece that
// starts with "diff --git" is git-style, every other file is plain, and the
// raw names of a plain file are read back from its "---"/"+++" lines.
func parsePatch(patch string) ([]*fileOp, error) {
	if strings.TrimSpace(patch) == "" {
		return nil, invalidPatch("no file changes found in the patch")
	}
	// Parse the whole patch once for errors with absolute line numbers.
	if _, _, err := gitdiff.Parse(strings.NewReader(patch)); err != nil {
		return nil, invalidPatch("cannot parse the unified diff: %v; fix it or regenerate it (e.g. with git diff)", err)
	}
	var ops []*fileOp
	for _, seg := range splitSegments(patch) {
		files, _, err := gitdiff.Parse(strings.NewReader(seg.text))
		if err != nil {
			return nil, invalidPatch("cannot parse the unified diff: %v; fix it or regenerate it (e.g. with git diff)", err)
		}
		plain := newPlainHeaders(seg)
		for i, f := range files {
			op, err := fileOpOf(f, seg.git && i == 0, plain)
			if err != nil {
				return nil, err
			}
			if op != nil {
				ops = append(ops, op)
			}
		}
	}
	if len(ops) == 0 {
		return nil, invalidPatch("no file changes found in the patch")
	}
	return ops, nil
}

// fileOpOf validates one parsed file; nil means it changes nothing.
func fileOpOf(f *gitdiff.File, git bool, plain *plainHeaders) (*fileOp, error) {
	oldName, newName := f.OldName, f.NewName
	isNew := f.IsNew || oldName == devNull
	isDelete := f.IsDelete || newName == devNull
	if !git {
		name := oldName
		if isNew {
			name = newName
		}
		name = plain.resolve(name)
		oldName, newName = name, name
	}
	if isNew && isDelete {
		return nil, invalidPatch("a file section both creates and deletes %q", newName)
	}
	if f.IsBinary {
		return nil, invalidPatch("the change to %q is a binary patch, which is not supported; write the file instead", firstNonEmpty(newName, oldName))
	}
	op := &fileOp{isCopy: f.IsCopy, frags: f.TextFragments}
	var err error
	if !isNew {
		if op.oldPath, err = cleanPath(oldName); err != nil {
			return nil, err
		}
	}
	if !isDelete {
		if op.newPath, err = cleanPath(newName); err != nil {
			return nil, err
		}
	}
	for _, m := range []os.FileMode{f.OldMode, f.NewMode} {
		if t := m &^ 0o7777; t != 0 && t != 0o100000 {
			return nil, invalidPatch("the change to %q sets git mode %o (a symlink or submodule); only regular files can be patched", op.name(), m)
		}
	}
	if !isDelete && f.NewMode != 0 && (isNew || f.NewMode&0o777 != f.OldMode&0o777) {
		op.newMode = f.NewMode & 0o777
	}
	if !isNew && !isDelete && op.oldPath == op.newPath {
		op.isCopy = false
		if len(op.frags) == 0 && op.newMode == 0 {
			return nil, nil
		}
	}
	return op, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" && a != devNull {
		return a
	}
	return b
}

// segment is a piece of a patch: everything before the first "diff --git"
// line, or a "diff --git" line and what follows up to the next one.
type segment struct {
	text  string
	git   bool
	lines []string
}

func splitSegments(patch string) []segment {
	lines := strings.SplitAfter(patch, "\n")
	var segs []segment
	start := 0
	flush := func(end int) {
		if end > start {
			ls := lines[start:end]
			segs = append(segs, segment{
				text:  strings.Join(ls, ""),
				git:   strings.HasPrefix(ls[0], "diff --git "),
				lines: ls,
			})
		}
		start = end
	}
	for i, l := range lines {
		if i > 0 && strings.HasPrefix(l, "diff --git ") {
			flush(i)
		}
	}
	flush(len(lines))
	return segs
}

// plainHeaders walks the "---"/"+++"/"@@ -" triples of a segment (the
// test go-gitdiff uses to find a plain file header), in order.
type plainHeaders struct {
	lines []string
	next  int
}

func newPlainHeaders(seg segment) *plainHeaders {
	h := &plainHeaders{lines: seg.lines}
	if seg.git {
		// Skip the git header (its own ---/+++ lines included).
		h.next = 1
		for h.next < len(h.lines) && isGitHeaderLine(h.lines[h.next]) {
			h.next++
		}
	}
	return h
}

func isGitHeaderLine(l string) bool {
	for _, p := range []string{"--- ", "+++ ", "old mode ", "new mode ", "deleted file mode ",
		"new file mode ", "copy from ", "copy to ", "rename old ", "rename new ", "rename from ",
		"rename to ", "similarity index ", "dissimilarity index ", "index "} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// resolve maps the single name go-gitdiff kept for a plain file to a
// workspace path: the -p1 prefix is stripped when the two names written
// differ in their first element ("a/x" "b/x", "old/x" "new/x"), or when only
// one name is given (the other is /dev/null) and it starts with "a/" or "b/";
// names without such prefixes ("x" "x") are kept as they are.
func (h *plainHeaders) resolve(name string) string {
	for i := h.next; i+2 < len(h.lines); i++ {
		if !strings.HasPrefix(h.lines[i], "--- ") || !strings.HasPrefix(h.lines[i+1], "+++ ") ||
			!strings.HasPrefix(h.lines[i+2], "@@ -") {
			continue
		}
		o, n := rawName(h.lines[i][4:]), rawName(h.lines[i+1][4:])
		if name != o && name != n {
			continue
		}
		h.next = i + 3
		if stripsPrefix(o, n) {
			return stripFirst(name)
		}
		return name
	}
	// Not found (should not happen): strip a git-style prefix.
	if strings.HasPrefix(name, "a/") || strings.HasPrefix(name, "b/") {
		return stripFirst(name)
	}
	return name
}

func stripsPrefix(o, n string) bool {
	switch {
	case o == devNull && n == devNull:
		return false
	case o == devNull || n == devNull:
		one := firstNonEmpty(o, n)
		return strings.HasPrefix(one, "a/") || strings.HasPrefix(one, "b/")
	case o == n:
		return false
	}
	oi, ni := strings.IndexByte(o, '/'), strings.IndexByte(n, '/')
	return oi > 0 && ni > 0 && o[:oi] != n[:ni]
}

func stripFirst(name string) string {
	if i := strings.IndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// rawName reads a file name the way go-gitdiff does for a plain header: a
// C-quoted name, or everything up to a tab or the end of the line; repeated
// slashes are collapsed.
func rawName(s string) string {
	s = strings.TrimSuffix(s, "\n")
	if strings.HasPrefix(s, "\"") {
		for n := 1; n < len(s); n++ {
			if s[n] == '"' && s[n-1] != '\\' {
				if u, err := strconv.Unquote(s[:n+1]); err == nil {
					s = u
				}
				break
			}
		}
	} else if i := strings.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	if s == devNull {
		return s
	}
	for strings.Contains(s, "//") {
		s = strings.ReplaceAll(s, "//", "/")
	}
	return s
}
