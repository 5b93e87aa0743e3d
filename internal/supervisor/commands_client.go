package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// ExecStream runs a tracked command and passes its output to sink while it
// runs (and sink.Stdin, when set, to its stdin, as the agent client does
// for a one-shot run); the answer is its result as Exec gives it.
func (c *Client) ExecStream(ctx context.Context, req ExecRequest, sink agentclient.ExecStreams) (*ExecResult, error) {
	req.Stream, req.StdinStream = true, sink.Stdin != nil
	b, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://supervisor/v1/exec", strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, c.transportErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeErr(resp)
	}
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var ev ExecEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeSupervisorUnavailable, "the command's output stream ended early")
		}
		switch {
		case ev.Command != nil:
			if sink.Stdin != nil {
				go c.feedStdin(feedCtx, ev.Command.CommandID, sink.Stdin)
			}
		case ev.Stdout != nil:
			write(sink.Stdout, ev.Stdout)
		case ev.Stderr != nil:
			write(sink.Stderr, ev.Stderr)
		case ev.Result != nil:
			return ev.Result, nil
		case ev.Error != nil:
			return nil, fromWire(ev.Error)
		}
	}
}

func write(w io.Writer, p []byte) {
	if w != nil {
		_, _ = w.Write(p)
	}
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
