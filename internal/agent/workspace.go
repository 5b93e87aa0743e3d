//go:build linux

package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// defaultArchiveMax bounds the file content of an archive op whose request
// names no limit.
const defaultArchiveMax int64 = 2 << 30

// dataChunk bounds the payload of one FrameData frame.
const dataChunk = 64 << 10

func (s *server) workspaceRoot() string {
	if s.opts.WorkspaceRoot != "" {
		return filepath.Clean(s.opts.WorkspaceRoot)
	}
	return agentproto.WorkspaceRoot
}

func archiveLimit(req *agentproto.ArchiveRequest) int64 {
	if req.MaxBytes > 0 {
		return req.MaxBytes
	}
	return defaultArchiveMax
}

// workspaceRel checks an archive path lexically: absolute and, once cleaned,
// the workspace root or under it. It returns the path relative to the root
// ("." for the root itself). Symlinks are dealt with by opening the result
// through an os.Root at the workspace root.
func (s *server) workspaceRel(req *agentproto.ArchiveRequest) (string, error) {
	root := s.workspaceRoot()
	if req == nil || req.Path == "" {
		return "", wireError(agentproto.ErrCodeBadRequest, "archive ops need a path under %s", root)
	}
	if !filepath.IsAbs(req.Path) {
		return "", wireError(agentproto.ErrCodeOutside, "%q is not an absolute path under %s", req.Path, root)
	}
	rel, err := filepath.Rel(root, filepath.Clean(req.Path))
	if err != nil || !filepath.IsLocal(rel) {
		return "", wireError(agentproto.ErrCodeOutside, "%s is outside %s", req.Path, root)
	}
	return rel, nil
}

// isEscape reports whether err is os.Root refusing a path that leads out of
// the root (the sentinel is not exported).
func isEscape(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}

// fsError turns a filesystem error about what (a path or an archive entry)
// into a wire error.
func (s *server) fsError(what string, err error) *agentproto.Error {
	if isEscape(err) {
		return wireError(agentproto.ErrCodeOutside, "%s leads outside %s through a symlink", what, s.workspaceRoot())
	}
	return destError(what, err)
}

// destError is fsError for errors that cannot be an escape.
func destError(what string, err error) *agentproto.Error {
	switch {
	case isEscape(err):
		return wireError(agentproto.ErrCodeOutside, "%s leads outside %s through a symlink", what, agentproto.WorkspaceRoot)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return wireError(agentproto.ErrCodeNotFound, "%s does not exist", what)
	case isNoSpace(err):
		return noSpace("%s", what)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is already in what
	}
	return wireError(agentproto.ErrCodeInternal, "%s: %v", what, err)
}

// isNoSpace reports a full filesystem (or an exhausted quota).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// noSpace is the wire error for a full workspace disk; the host adds what to do.
func noSpace(format string, args ...any) *agentproto.Error {
	return wireError(agentproto.ErrCodeNoSpace, "no space left on the workspace disk: "+format, args...)
}

func (s *server) stagingRoot() string {
	if s.opts.StagingRoot != "" {
		return filepath.Clean(s.opts.StagingRoot)
	}
	return defaultStagingRoot
}
