package wsdiff

import (
	"bytes"
	"os"
	"slices"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// FileSource gives the current content of a workspace file (relative path).
// A missing file is reported with exists false (or an errdefs not-found
// error); other errors abort Plan and are returned as they are.
type FileSource func(path string) (content []byte, mode os.FileMode, exists bool, err error)

// PatchResult is what applying a patch would do.
type PatchResult struct {
	Files   []PatchedFile // the new content of every file the patch changes, to be written back; sorted by path
	Changed []string      `json:"changed"` // relative paths, sorted
}

// PatchedFile is one file to write back (or delete, when Delete is set).
type PatchedFile struct {
	Path    string
	Content []byte
	Mode    os.FileMode // permission bits
	Delete  bool
}

const defaultFileMode os.FileMode = 0o644

// Plan parses a unified diff and applies it in memory to the files read
// through src, all or nothing.
//
// Accepted: git-style sections ("diff --git", a/ b/ prefixes stripped) and
// plain "---"/"+++" sections (the a/ b/ or other first element stripped when
// the two names differ in it, e.g. "a/x" "b/x"; kept when both names are the
// same, e.g. "src/x" "src/x"). Paths under "/workspace/" are made relative;
// other absolute paths and ".." are refused (path_outside_workspace).
// Supported: modifications, new files (from /dev/null), deletions (to
// /dev/null), renames and copies, mode changes (regular files only). Binary
// patches are refused (invalid_argument); an empty or unparsable patch is
// invalid_argument.
//
// Hunks must match the file exactly (no fuzz), but a hunk whose lines are
// found at another line than its header says is applied there, as git apply
// and patch do. When any hunk of any file does not apply, Plan returns a
// patch_failed error naming the file and the hunk, and no result.
func Plan(patch string, src FileSource) (*PatchResult, error) {
	ops, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	p := &planner{src: src, files: map[string]*fileState{}}
	for _, op := range ops {
		if err := p.apply(op); err != nil {
			return nil, err
		}
	}
	return p.result(), nil
}

// fileState is the in-memory state of one file while a patch is applied.
type fileState struct {
	exists, origExists bool
	content, orig      []byte
	mode, origMode     os.FileMode
}

type planner struct {
	src   FileSource
	files map[string]*fileState
}

// get loads a file through src once; later sections see earlier changes.
func (p *planner) get(path string) (*fileState, error) {
	if fs, ok := p.files[path]; ok {
		return fs, nil
	}
	content, mode, exists, err := p.src(path)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			if typed(err) {
				return nil, err
			}
			return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "reading %s", path)
		}
		exists = false
	}
	if exists && !mode.IsRegular() {
		return nil, patchFailed("%s: is not a regular file (it is a %s); patches change regular files only", path, kindOfMode(mode))
	}
	if !exists {
		content, mode = nil, 0
	}
	fs := &fileState{exists: exists, origExists: exists, content: content, orig: content,
		mode: mode.Perm(), origMode: mode.Perm()}
	p.files[path] = fs
	return fs, nil
}

func kindOfMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symlink"
	}
	return "special file"
}

func (p *planner) apply(op *fileOp) error {
	var from *fileState
	if op.isNew() {
		to, err := p.get(op.newPath)
		if err != nil {
			return err
		}
		if to.exists {
			return patchFailed("%s: the patch creates this file but it already exists; patch it as a change instead", op.newPath)
		}
		from = &fileState{}
	} else {
		var err error
		if from, err = p.get(op.oldPath); err != nil {
			return err
		}
		if !from.exists {
			return patchFailed("%s: the patch changes this file but it does not exist", op.oldPath)
		}
	}
	content, err := applyFragments(op.name(), from.content, op.frags)
	if err != nil {
		return err
	}
	if op.isDelete() {
		if len(content) > 0 {
			return patchFailed("%s: the patch deletes this file but it is not empty after the patch's hunks; regenerate the patch", op.oldPath)
		}
		from.exists, from.content = false, nil
		return nil
	}
	to := from
	if op.isNew() || op.newPath != op.oldPath {
		if to, err = p.get(op.newPath); err != nil {
			return err
		}
		if !op.isNew() && to.exists {
			return patchFailed("%s: the patch renames or copies %s to this path but it already exists", op.newPath, op.oldPath)
		}
		to.mode = from.mode
		if op.isNew() {
			to.mode = defaultFileMode
		}
		if !op.isNew() && !op.isCopy {
			from.exists, from.content = false, nil
		}
	}
	to.exists, to.content = true, content
	if op.newMode != 0 {
		to.mode = op.newMode
	}
	return nil
}

func (p *planner) result() *PatchResult {
	res := &PatchResult{Files: []PatchedFile{}, Changed: []string{}}
	for path, fs := range p.files {
		switch {
		case !fs.exists && !fs.origExists:
			continue
		case !fs.exists:
			res.Files = append(res.Files, PatchedFile{Path: path, Delete: true})
		case !fs.origExists || fs.mode != fs.origMode || !bytes.Equal(fs.content, fs.orig):
			res.Files = append(res.Files, PatchedFile{Path: path, Content: fs.content, Mode: fs.mode})
		}
	}
	slices.SortFunc(res.Files, func(a, b PatchedFile) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range res.Files {
		res.Changed = append(res.Changed, f.Path)
	}
	return res
}
