// Package fsutil holds the file-system helpers that several packages share:
// crash-safe replacement of small files, and disk usage.
package fsutil

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/google/renameio/v2"
)

// WriteFileAtomic replaces path with data: a temp file beside it, fsync,
// rename, fsync of the directory. Readers see the old or the new file, never
// a partial one, also after a crash.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := renameio.WriteFile(path, data, perm, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	return SyncDir(dir)
}

// WriteJSONAtomic writes v, indented, with WriteFileAtomic.
func WriteJSONAtomic(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'), perm)
}

// ReplaceJSON is WriteJSONAtomic without the directory's fsync: the new
// file's data is on disk before the rename, so after a crash the name holds
// the old file or the new one, both whole, but the replacement itself may
// be undone. For updates that may be lost but must never be torn.
func ReplaceJSON(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return renameio.WriteFile(path, append(b, '\n'), perm, renameio.WithTempDir(filepath.Dir(path)))
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error { return SyncFile(dir) }

// DiskUsage is the space a tree takes on disk (allocated blocks, each
// hard-linked inode counted once; a missing path is 0). Images and overlays
// are sparse, so their apparent size would overstate what removing them frees.
func DiskUsage(path string) int64 {
	var total int64
	seen := map[[2]uint64]bool{}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			total += info.Size()
			return nil
		}
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

// SyncFile fsyncs a file written by someone else (e.g. a VMM).
func SyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// CopyFile copies src to dst (created or truncated) with mode perm and
// fsyncs it.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(perm)
	}
	if err == nil {
		err = out.Sync()
	}
	return errors.Join(err, out.Close())
}
