package archive

import (
	"context"
	"errors"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func badArchive(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidArgument, CodeBadArchive, format, args...)
}

func wrapBadArchive(cause error, format string, args ...any) error {
	return errdefs.Wrap(cause, errdefs.ErrInvalidArgument, CodeBadArchive, format, args...)
}

func outside(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidArgument, CodePathOutsideWorkspace, format, args...)
}

func tooLarge(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidArgument, CodeTooLarge, format, args...)
}

func invalid(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, format, args...)
}

func internal(cause error, format string, args ...any) error {
	return errdefs.Wrap(cause, errdefs.ErrInternal, errdefs.CodeInternal, format, args...)
}

// canceled converts a done context into a typed error.
func canceled(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return errdefs.Wrap(err, errdefs.ErrDeadlineExceeded, errdefs.CodeTimeout,
			"the archive operation ran out of time; retry with a longer timeout or a smaller tree")
	}
	return errdefs.Wrap(err, errdefs.ErrCanceled, errdefs.CodeCanceled,
		"the archive operation was canceled; its output is partial and must be discarded")
}

// typed reports whether err already carries a code; such errors pass through.
func typed(err error) bool {
	var e *errdefs.Error
	return errors.As(err, &e)
}

// isEscape reports whether err is os.Root refusing a path that leaves the
// root (through ".." or a symlink). os does not export the sentinel.
func isEscape(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}
