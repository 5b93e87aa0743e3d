// Package wsdiff compares a workspace against its create-time baseline and
// applies unified diffs to workspace files, entirely on the host and in
// memory.
//
// Compare reads two tar streams (the baseline kept by the host and the
// current /workspace tree packed by the guest) and reports the changed files
// with a unified diff per text file; Result.Patch concatenates those diffs
// into one git-style patch that Plan can apply back to the baseline.
//
// Plan parses a unified diff (git-style or plain) with go-gitdiff and applies
// it, all or nothing, to file contents read through a FileSource; the caller
// writes PatchResult.Files back. Paths lists what Plan will read.
//
// Every failure is an *errdefs.Error with one of the codes below or
// errdefs.CodeInvalidArgument.
package wsdiff

import (
	"errors"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Stable error codes of this package (the first three have the same values as
// the internal/archive codes).
const (
	CodePathOutsideWorkspace = errdefs.CodePathOutsideWorkspace // class ErrInvalidArgument
	CodeTooLarge             = errdefs.CodeTooLarge             // class ErrInvalidArgument
	CodeBadArchive           = errdefs.CodeBadArchive           // class ErrInvalidArgument
	CodePatchFailed          = errdefs.CodePatchFailed          // class ErrFailedPrecondition
)

func outside(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidArgument, CodePathOutsideWorkspace, format, args...)
}

func tooLarge(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidArgument, CodeTooLarge, format, args...)
}

func badArchive(cause error, format string, args ...any) error {
	return errdefs.Wrap(cause, errdefs.ErrInvalidArgument, CodeBadArchive, format, args...)
}

func patchFailed(format string, args ...any) error {
	return errdefs.New(errdefs.ErrFailedPrecondition, CodePatchFailed, format, args...)
}

func invalidPatch(format string, args ...any) error {
	return errdefs.InvalidArgument("patch", format, args...)
}

// typed reports whether err already carries a code.
func typed(err error) bool {
	var e *errdefs.Error
	return errors.As(err, &e)
}
