// Package netutil holds small net.Conn helpers shared by the host's network
// stack and the agent channel (no dependencies: the guest agent links it).
package netutil

import "net"

// PrefixConn is a connection whose first bytes were already read from it:
// its reads return Prefix first, then the connection's own.
type PrefixConn struct {
	net.Conn
	Prefix []byte
}

func (c *PrefixConn) Read(p []byte) (int, error) {
	if len(c.Prefix) > 0 {
		n := copy(p, c.Prefix)
		c.Prefix = c.Prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
