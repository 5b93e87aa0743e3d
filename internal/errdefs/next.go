package errdefs

import (
	"errors"
	"fmt"
	"strings"
)

// Next is the call that gets past an error, named on each face in its own
// verbs: a CLI user reads `run "pyro workspace start ab12" first`, a model
// over MCP reads `call workspace_start first`.
type Next struct {
	// Hint is the rest of the message after Error.Message, with %s where
	// the call goes: ": %s first", "; %s to see them".
	Hint string `json:"hint"`
	CLI  string `json:"cli"` // the pyro command, e.g. "pyro workspace start ab12"
	// Tool is the MCP tool that does the same; "" when only the operator
	// can (e.g. pulling an environment): the model is told so.
	Tool string `json:"tool,omitempty"`
	// Also is a second call worth knowing, rendered after this one.
	Also *Next `json:"also,omitempty"`
}

// ForCLI renders the hint for the CLI and Go callers.
func (n *Next) ForCLI() string {
	s := fmt.Sprintf(n.Hint, `run "`+n.CLI+`"`)
	if n.Also != nil {
		s += n.Also.ForCLI()
	}
	return s
}

// ForTool renders the hint for a model calling MCP tools.
func (n *Next) ForTool() string {
	s := fmt.Sprintf(n.Hint, "call "+n.Tool)
	if n.Tool == "" {
		s = fmt.Sprintf(n.Hint, `the operator can run "`+n.CLI+`"`)
	}
	if n.Also != nil {
		s += n.Also.ForTool()
	}
	return s
}

// WithNext adds the call that gets past e (see Next) and returns e.
func (e *Error) WithNext(hint, cli, tool string) *Error {
	e.Next = &Next{Hint: hint, CLI: cli, Tool: tool}
	return e
}

// Split returns err's text without the CLI rendering of its Next (if any)
// and that Next, so that a border can render the hint for its own face or
// carry both across a process boundary.
func Split(err error) (string, *Next) {
	msg := err.Error()
	var e *Error
	if !errors.As(err, &e) || e.Next == nil {
		return msg, nil
	}
	return strings.Replace(msg, e.Next.ForCLI(), "", 1), e.Next
}

// ForTool is err's text for a model: its Next names the MCP tool.
func ForTool(err error) string {
	msg, next := Split(err)
	if next == nil {
		return msg
	}
	return msg + next.ForTool()
}
