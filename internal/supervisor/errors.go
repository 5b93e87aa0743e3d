package supervisor

import "github.com/pyrovm/pyro/internal/errdefs"

// toWire keeps an error's stable code across the API.
func toWire(err error) *WireError {
	msg, next := errdefs.Split(err)
	return &WireError{Code: errdefs.CodeOf(err), Class: errdefs.ClassName(err), Message: msg, Next: next}
}
