package archive

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
)

// PackFiles packs the given files (paths relative to r, e.g. the files Git
// tracks in a checkout) from the opened directory r into a normalized tar stream, sorted by
// name, each preceded by its parent directories. A name that is absolute or
// has a ".." element fails with path_outside_workspace. A file that is
// missing, unreadable, a directory (a Git submodule), a special file, or
// reachable only through a symlinked parent is skipped and listed in
// Stats.Skipped. Symlinks are packed as links, never followed.
func PackFiles(ctx context.Context, r *os.Root, files []string, w io.Writer, lim Limits) (Stats, error) {
	var st Stats
	if ctx.Err() != nil {
		return st, canceled(ctx)
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		name, err := cleanName(f)
		if err != nil {
			return st, err
		}
		if name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)

	o := newTarOut(w, newBudget(lim, "the file set"), &st)
	dirs := map[string]bool{} // parent dir -> usable (a real directory, written)
	for _, name := range names {
		if ctx.Err() != nil {
			return st, canceled(ctx)
		}
		ok, err := packParents(r, name, dirs, o)
		if err != nil {
			return st, err
		}
		if !ok {
			o.skip(name, "a parent directory is missing or is not a directory")
			continue
		}
		fi, err := r.Lstat(name)
		if err != nil {
			reason := "unreadable: " + err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				reason = "missing"
			}
			o.skip(name, reason)
			continue
		}
		if fi.IsDir() {
			o.skip(name, "a directory, not a file (a Git submodule?); not packed")
			continue
		}
		if err := packEntry(ctx, r, name, fi, o, true); err != nil {
			return st, err
		}
	}
	return st, o.close()
}

// packParents writes the not yet written parent directories of name and
// reports whether all of them are real directories.
func packParents(r *os.Root, name string, dirs map[string]bool, o *tarOut) (bool, error) {
	for _, p := range parents(name) {
		ok, seen := dirs[p]
		if !seen {
			fi, err := r.Lstat(p)
			ok = err == nil && fi.IsDir()
			dirs[p] = ok
			if ok {
				if err := o.dir(p, fileMode(fi.Mode()), fi.ModTime()); err != nil {
					return false, err
				}
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}
