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
	case errdefs.CodeInvalidArgument, errdefs.CodePathOutsideWorkspace, errdefs.CodeTooLarge, errdefs.CodeBadArchive:
		return errdefs.ErrInvalidArgument
	case errdefs.CodeNotFound, errdefs.CodeWorkspaceNotFound:
		return errdefs.ErrNotFound
	case errdefs.CodeTimeout:
		return errdefs.ErrDeadlineExceeded
	case errdefs.CodeCanceled:
		return errdefs.ErrCanceled
	case errdefs.CodeBootFailed, errdefs.CodeAgentUnavailable, errdefs.CodeVMCrashed, errdefs.CodeVMMFailed:
		return errdefs.ErrUnavailable
	case errdefs.CodeExecFailed, errdefs.CodeAgentProtocol, errdefs.CodeHostToolMissing, CodeSecretsInstallFailed:
		return errdefs.ErrFailedPrecondition
	}
	return errdefs.ErrInternal
}
