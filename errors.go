package pyro

import "github.com/pyrovm/pyro/internal/errdefs"

// Error is a typed pyro failure: Code is stable (e.g. "environment_missing",
// "boot_failed", "invalid_argument"), Message says what to do next.
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
