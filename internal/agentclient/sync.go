package agentclient

import (
	"context"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Sync flushes the guest's filesystems (before a stop or a copy of its disk).
func (c *Client) Sync(ctx context.Context) error {
	st, err := c.call(ctx, agentproto.Request{Op: agentproto.OpSync}, quickBound)
	if err != nil {
		return err
	}
	defer st.done()
	return readResult(st, &struct{}{})
}

// Park asks the agent to end this session and wait, with its port still
// open, for the next host's handshake (agentproto.OpPark). Make no more
// calls on c afterwards, and keep its connection open until the machine is
// saved: a host that disconnects sends the guest back to reopening its port.
func (c *Client) Park(ctx context.Context) error {
	st, err := c.call(ctx, agentproto.Request{Op: agentproto.OpPark}, quickBound)
	if err != nil {
		return err
	}
	defer st.done()
	return readResult(st, &struct{}{})
}
