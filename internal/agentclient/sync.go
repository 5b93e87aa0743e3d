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
