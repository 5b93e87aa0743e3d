package supervisor

import "github.com/pyrovm/pyro/internal/supervisor/wire"

// The API's shapes a light client shares (package wire).
type (
	Info        = wire.Info
	WireError   = wire.WireError
	ExecRequest = wire.ExecRequest
	ExecEvent   = wire.ExecEvent
	ExecResult  = wire.ExecResult
)

// APIVersion numbers the supervisor's HTTP API (see wire.APIVersion).
const APIVersion = wire.APIVersion
