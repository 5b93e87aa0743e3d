package pyro

import "github.com/pyrovm/pyro/internal/errdefs"

// Error is a typed pyro failure: Code is stable (e.g. "environment_missing",
// "boot_failed", "invalid_argument"; see the Code constants), Message says
// what to do next, Class is one of the Err* classes below, Cause the
// underlying error (may be nil). It stays an alias of the type every layer
// of pyro returns, so that errors.As(err, &e) with e a *pyro.Error finds it
// whichever layer failed.
type Error = errdefs.Error

// Error classes; test with errors.Is.
var (
	ErrNotFound           = errdefs.ErrNotFound
	ErrInvalidArgument    = errdefs.ErrInvalidArgument
	ErrFailedPrecondition = errdefs.ErrFailedPrecondition
	ErrUnavailable        = errdefs.ErrUnavailable
	ErrCanceled           = errdefs.ErrCanceled
)

// ErrorCode returns the stable code of err ("" for nil).
func ErrorCode(err error) string { return errdefs.CodeOf(err) }

func validateAccel(a string) error {
	switch a {
	case "auto", "kvm", "tcg":
		return nil
	}
	return errdefs.InvalidArgument("accel", "%q is not one of auto, kvm, tcg", a)
}
