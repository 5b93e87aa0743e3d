package supervisor

import "github.com/pyrovm/pyro/internal/errdefs"

// toWire keeps an error's stable code across the API.
func toWire(err error) *WireError {
	msg, next := errdefs.Split(err)
	return &WireError{Code: errdefs.CodeOf(err), Class: errdefs.ClassName(err), Message: msg, Next: next}
}

// fromWire rebuilds a typed error; the class travels with it (older
// supervisors sent only the code, from which it is derived).
func fromWire(w *WireError) error {
	class := errdefs.ClassByName(w.Class)
	if class == nil {
		class = classOf(w.Code)
	}
	return &errdefs.Error{Code: w.Code, Message: w.Message, Class: class, Next: w.Next}
}

func classOf(code string) error {
	switch code {
	case errdefs.CodeInvalidArgument, "path_outside_workspace", "too_large", "bad_archive":
		return errdefs.ErrInvalidArgument
	case "not_found", "workspace_not_found":
		return errdefs.ErrNotFound
	case errdefs.CodeTimeout:
		return errdefs.ErrDeadlineExceeded
	case errdefs.CodeCanceled:
		return errdefs.ErrCanceled
	case errdefs.CodeBootFailed, "agent_unavailable", "vm_crashed", errdefs.CodeVMMFailed:
		return errdefs.ErrUnavailable
	case "exec_failed", errdefs.CodeAgentProtocol, errdefs.CodeHostToolMissing, CodeSecretsInstallFailed:
		return errdefs.ErrFailedPrecondition
	}
	return errdefs.ErrInternal
}
