// Package archive moves file trees between the host and a workspace guest as
// tar streams, treating every tree it did not build itself as hostile.
//
// Seed and PackFiles read host files and write a normalized tar stream:
// relative, cleaned, slash-separated names (no "./", no leading "/", no ".."
// element, no trailing "/" on directories); only regular files, directories,
// symlinks and (from tar input only) hard links; uid/gid 0 with empty
// user/group names; permission bits only (mode & 0777, plus the sticky bit on
// directories); modification times kept, rounded to the second.
//
// Extract writes an untrusted tar stream (from a guest) under a host
// directory through an os.Root, so no entry can land outside it.
//
// Every failure is an *errdefs.Error with one of the codes below (or
// errdefs.CodeInvalidArgument, errdefs.CodeCanceled, errdefs.CodeTimeout,
// errdefs.CodeInternal). When an error is returned, the tar stream written so
// far (Seed, PackFiles) or the files extracted so far (Extract) are partial and
// must be discarded by the caller.
package archive

import "github.com/pyrovm/pyro/internal/errdefs"

// Stable error codes of this package; errdefs.CodeOf returns them.
const (
	CodePathOutsideWorkspace = errdefs.CodePathOutsideWorkspace
	CodeBadArchive           = errdefs.CodeBadArchive
	CodeTooLarge             = errdefs.CodeTooLarge
	CodeNotFound             = errdefs.CodeNotFound
)

// Limits bounds what one call may read or write. Zero fields take defaults.
type Limits struct {
	MaxBytes   int64 // total regular-file content; default 2 GiB when <= 0
	MaxEntries int   // default 200_000 when <= 0
}

// Stats tells what went into (or came out of) a stream.
type Stats struct {
	Entries int       `json:"entries"` // entries written (files, dirs, links)
	Bytes   int64     `json:"bytes"`   // regular-file content bytes
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Skipped names a host file that was left out, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}
