package vm

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/vmm"
)

// bareMachine is a vmm.Machine with no optional capability: only the
// capability check is under test, no VM runs.
type bareMachine struct{}

func (bareMachine) Start(context.Context) (net.Conn, error) { return nil, nil }
func (bareMachine) Exited() <-chan struct{}                 { return nil }
func (bareMachine) Wait(context.Context) error              { return nil }
func (bareMachine) Kill() error                             { return nil }
func (bareMachine) Stop(time.Duration) error                { return nil }
func (bareMachine) ConsoleTail(int) string                  { return "" }
func (bareMachine) Pid() int                                { return 0 }
func (bareMachine) ExecutionMode() string                   { return "guest_bare_tcg" }
func (bareMachine) Close() error                            { return nil }

// A backend whose machines cannot save their state answers a pause with
// vmm_unsupported naming it, before it touches the guest.
func TestPauseNeedsStateSaver(t *testing.T) {
	v := &VM{machine: bareMachine{}, backend: "bare"}
	err := v.Pause(t.Context(), filepath.Join(t.TempDir(), "state"))
	if errdefs.CodeOf(err) != errdefs.CodeVMMUnsupported || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("pause on a backend without StateSaver: %v (code %q)", err, errdefs.CodeOf(err))
	}
	var _ vmm.Machine = bareMachine{}
}
