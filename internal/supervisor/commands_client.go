package supervisor

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
)

// ExecStream runs a tracked command and passes its output to sink while it
// runs (and sink.Stdin, when set, to its stdin, as the agent client does
// for a one-shot run); the answer is its result as Exec gives it.
func (c *Client) ExecStream(ctx context.Context, req ExecRequest, sink agentclient.ExecStreams) (*ExecResult, error) {
	req.StdinStream = sink.Stdin != nil
	body, err := wire.PostExec(ctx, c.http, req)
	var refused *wire.Refused
	if errors.As(err, &refused) {
		return nil, refused.Err
	}
	if err != nil {
		return nil, c.transportErr(ctx, err)
	}
	defer body.Close()
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	return wire.ReadExec(ctx, body, sink, func(cmd *command.Info) {
		if sink.Stdin != nil {
			go c.feedStdin(feedCtx, cmd.CommandID, sink.Stdin)
		}
	})
}

// feedStdin sends r as the command's stdin; a command that ended first
// makes this fail, which nobody needs to hear.
func (c *Client) feedStdin(ctx context.Context, id string, r io.Reader) {
	_ = c.do(ctx, http.MethodPost, "/v1/commands/"+id+"/stdin", io.NopCloser(r), "application/octet-stream", nil)
}

// StartCommand starts a background command.
func (c *Client) StartCommand(ctx context.Context, req ExecRequest) (*command.Info, error) {
	req.Background = true
	var i command.Info
	return &i, c.post(ctx, "/v1/exec", req, &i)
}

// Commands lists the commands the supervisor holds.
func (c *Client) Commands(ctx context.Context) ([]command.Info, error) {
	var l []command.Info
	return l, c.do(ctx, http.MethodGet, "/v1/commands", nil, "", &l)
}

// Command describes one command.
func (c *Client) Command(ctx context.Context, id string) (*command.Info, error) {
	var i command.Info
	return &i, c.do(ctx, http.MethodGet, "/v1/commands/"+id, nil, "", &i)
}

// CommandLogs reads a command's output from cursors.
func (c *Client) CommandLogs(ctx context.Context, id string, req CommandLogsRequest) (*CommandLogs, error) {
	var l CommandLogs
	return &l, c.post(ctx, "/v1/commands/"+id+"/logs", req, &l)
}

// WaitCommand waits for a command to end, at most req.TimeoutMs.
func (c *Client) WaitCommand(ctx context.Context, id string, req CommandWaitRequest) (*command.Info, error) {
	var i command.Info
	return &i, c.post(ctx, "/v1/commands/"+id+"/wait", req, &i)
}

// KillCommand kills a running command and waits for it to end.
func (c *Client) KillCommand(ctx context.Context, id string) (*command.Info, error) {
	var i command.Info
	return &i, c.post(ctx, "/v1/commands/"+id+"/kill", struct{}{}, &i)
}
