package qemu

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// agentChardev is the id of the agent channel's chardev (see Args).
const agentChardev = "agent"

// Bounds of DetachAgent: the guest agent leaves its session within
// milliseconds on a quiet host and within about a second on a loaded one.
const (
	detachWait = 5 * time.Second
	detachPoll = 5 * time.Millisecond
)

// DetachAgent runs closeHost (which closes the host's end of the agent
// channel) and returns once the guest's agent has closed its port in turn:
// it has seen its session end and is back to reopening the port, so a
// machine saved from now on starts a fresh session with its next host.
//
// QEMU shows the guest side of a virtio-serial port as its chardev's
// "frontend-open" (query-chardev), which DetachAgent polls. The port's
// VSERPORT_CHANGE event would say the same but QEMU sends at most one per
// second, so after a recent boot or restore it came up to a second late.
// closeHost is not called when the control socket cannot be reached or
// does not show the guest's side open (the caller then closes and waits as
// it did before); it is called exactly once otherwise.
func (m *Machine) DetachAgent(ctx context.Context, closeHost func()) error {
	if !m.cfg.Saveable {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "machine %s was not made saveable (no QMP socket)", m.cfg.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, detachWait)
	defer cancel()
	q, err := dialQMP(ctx, filepath.Join(m.cfg.RuntimeDir, qmpSocket))
	if err != nil {
		return err
	}
	defer q.Close()
	// The guest holds the port while the session lasts: if QEMU does not
	// say so, its "frontend-open" cannot tell when the guest lets go.
	if open, err := q.frontendOpen(agentChardev); err != nil || !open {
		return fmt.Errorf("qmp: the agent chardev does not show the guest's session (open=%v): %v", open, err)
	}
	closeHost()
	for {
		open, err := q.frontendOpen(agentChardev)
		if err != nil {
			return err
		}
		if !open {
			return nil
		}
		select {
		case <-time.After(detachPoll):
		case <-ctx.Done():
			return fmt.Errorf("the guest agent still holds its port after %v", detachWait)
		}
	}
}

// frontendOpen reports whether the device on chardev id has it open (for a
// virtio-serial port: whether the guest has the port open).
func (q *qmpClient) frontendOpen(id string) (bool, error) {
	var chardevs []struct {
		Label        string `json:"label"`
		FrontendOpen bool   `json:"frontend-open"`
	}
	if err := q.execute("query-chardev", nil, &chardevs, nil); err != nil {
		return false, err
	}
	for _, c := range chardevs {
		if c.Label == id {
			return c.FrontendOpen, nil
		}
	}
	return false, fmt.Errorf("qmp: no chardev %q", id)
}
