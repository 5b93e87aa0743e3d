package qemu

import (
	"context"
	"encoding/json"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// agentPortID is the device id of the agent's virtio-serial port.
const agentPortID = "agentport"

// detachWait bounds how long DetachAgent waits for the guest agent to close
// its port after the host closed its end (it takes milliseconds).
const detachWait = 5 * time.Second

// DetachAgent runs closeHost (which closes the host's end of the agent
// channel) and returns once the guest's agent has closed its port in turn:
// it has seen its session end and is back to reopening the port, so a
// machine saved from now on starts a fresh session with its next host.
// QEMU tells it by a VSERPORT_CHANGE event, which is why the wait costs
// milliseconds instead of a fixed settle time. closeHost is not called when
// the control socket cannot be reached (the caller then closes and waits
// as it did before); it is called exactly once otherwise.
func (m *Machine) DetachAgent(ctx context.Context, closeHost func()) error {
	if m.cfg.QMPSocket == "" {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "machine %s has no QMP socket", m.cfg.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, detachWait)
	defer cancel()
	q, err := dialQMP(ctx, m.cfg.QMPSocket)
	if err != nil {
		return err
	}
	defer q.Close()
	closeHost()
	return q.waitEvent("VSERPORT_CHANGE", func(data json.RawMessage) bool {
		var ev struct {
			ID   string `json:"id"`
			Open bool   `json:"open"`
		}
		return json.Unmarshal(data, &ev) == nil && ev.ID == agentPortID && !ev.Open
	})
}
