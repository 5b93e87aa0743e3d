// Package errdefs holds pyro's typed errors: a small set of classes (sentinels)
// and a stable, user-facing code per failure. Every border converts explicitly:
// agent wire code -> error, error -> CLI exit code, error -> MCP tool error.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Classes. Wrap them with %w; test with errors.Is or the Is* helpers.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	ErrConflict           = errors.New("conflict")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrInternal           = errors.New("internal error")
	ErrCanceled           = errors.New("canceled")
)

// Error is a failure with a stable code, a message that says what to do next,
// and the class it belongs to.
type Error struct {
	Code    string // stable, snake_case
	Message string // one line, actionable
	Class   error  // one of the Err* sentinels
	Cause   error  // underlying error, may be nil
	Next    *Next  // the call that gets past it, named per face; may be nil
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Cause != nil && e.Message == "" {
		msg = e.Cause.Error()
	}
	if e.Next != nil {
		msg += e.Next.ForCLI()
	}
	return msg
}

// Unwrap exposes both the class and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	out := []error{e.Class}
	if e.Cause != nil {
		out = append(out, e.Cause)
	}
	return out
}

// New builds a typed error.
func New(class error, code, format string, args ...any) *Error {
	return &Error{Code: code, Class: class, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds a typed error around a cause; the message should already say
// what failed and what to do, the cause is appended for detail.
func Wrap(cause error, class error, code, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if cause != nil {
		msg = msg + ": " + cause.Error()
	}
	return &Error{Code: code, Class: class, Message: msg, Cause: cause}
}

// InvalidArgument is the common "bad input" error naming the field.
func InvalidArgument(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Class: ErrInvalidArgument,
		Message: field + ": " + fmt.Sprintf(format, args...)}
}

// CodeOf returns the stable code of err, deriving one from its class when err
// carries no explicit code.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, ErrCanceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrDeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, ErrInvalidArgument):
		return CodeInvalidArgument
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrAlreadyExists):
		return "already_exists"
	case errors.Is(err, ErrFailedPrecondition):
		return "failed_precondition"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrPermissionDenied):
		return "permission_denied"
	}
	return CodeInternal
}

func IsNotFound(err error) bool           { return errors.Is(err, ErrNotFound) }
func IsInvalidArgument(err error) bool    { return errors.Is(err, ErrInvalidArgument) }
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }
func IsUnavailable(err error) bool        { return errors.Is(err, ErrUnavailable) }
func IsDeadlineExceeded(err error) bool {
	return errors.Is(err, ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}
func IsCanceled(err error) bool {
	return errors.Is(err, ErrCanceled) || errors.Is(err, context.Canceled)
}

// classNames names each class for the wire (the supervisor API).
var classNames = map[string]error{
	"not_found": ErrNotFound, "already_exists": ErrAlreadyExists, "invalid_argument": ErrInvalidArgument,
	"failed_precondition": ErrFailedPrecondition, "unavailable": ErrUnavailable,
	"deadline_exceeded": ErrDeadlineExceeded, "conflict": ErrConflict, "internal": ErrInternal,
	"canceled": ErrCanceled, "permission_denied": ErrPermissionDenied,
}

// ClassName names err's class, so that it can cross a process boundary.
func ClassName(err error) string {
	if IsCanceled(err) {
		return "canceled"
	}
	if IsDeadlineExceeded(err) {
		return "deadline_exceeded"
	}
	for name, class := range classNames {
		if errors.Is(err, class) {
			return name
		}
	}
	return "internal"
}

// ClassByName is the inverse of ClassName; nil for an unknown name.
func ClassByName(name string) error { return classNames[name] }

// IsNoSpace reports a full filesystem or an exhausted disk quota.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// HostNoSpace types a write that failed because the host disk holding where
// is full.
func HostNoSpace(err error, where string) *Error {
	return Wrap(err, ErrFailedPrecondition, CodeNoSpace,
		"the host disk holding %s is full: free space there (pyro env prune, delete unused workspaces or snapshots) and retry", where)
}
