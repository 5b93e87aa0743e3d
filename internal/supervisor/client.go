package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/shell"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
	"github.com/pyrovm/pyro/internal/vm"
)

// Client calls one supervisor over its socket.
type Client struct {
	socket string
	http   *http.Client
	// gone, when set, explains a socket nobody listens on: it returns the
	// error to report instead of the bare dial error, or nil to keep it.
	gone func() error
}

// Dial returns a client for the supervisor listening on socket. It does not
// connect until a call is made.
func Dial(socket string) *Client {
	c := &Client{socket: socket}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", socket)
			if err != nil && c.gone != nil && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)) {
				if why := c.gone(); why != nil {
					return nil, why
				}
			}
			return conn, err
		},
		DisableCompression: true,
		MaxIdleConns:       4,
	}
	c.http = &http.Client{Transport: tr}
	return c
}

// WhenGone sets how to explain a socket that nobody listens on, for example
// because the supervisor was killed a moment ago and is still exiting.
func (c *Client) WhenGone(explain func() error) *Client {
	c.gone = explain
	return c
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Alive reports whether the supervisor answers.
func (c *Client) Alive(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := c.Status(ctx)
	return err == nil
}

func (c *Client) Status(ctx context.Context) (*Info, error) {
	var i Info
	return &i, c.do(ctx, http.MethodGet, "/v1/status", nil, "", &i)
}

func (c *Client) Exec(ctx context.Context, req ExecRequest) (*ExecResult, error) {
	b, _ := json.Marshal(req)
	var r ExecResult
	return &r, c.do(ctx, http.MethodPost, "/v1/exec", strings.NewReader(string(b)), "application/json", &r)
}

// PutArchive streams a tar into dest (a path under /workspace) in the guest
// and removes the entries remove names (relative to dest), all or nothing.
func (c *Client) PutArchive(ctx context.Context, dest string, remove []string, tarStream io.Reader) (*ArchiveResult, error) {
	q := url.Values{"path": {dest}}
	if len(remove) > 0 {
		q["remove"] = remove
	}
	var r ArchiveResult
	return &r, c.do(ctx, http.MethodPost, "/v1/archive?"+q.Encode(), tarStream, "application/x-tar", &r)
}

// GetArchive streams a tar of path (under /workspace) from the guest into w.
func (c *Client) GetArchive(ctx context.Context, path string, maxBytes int64, w io.Writer) (*ArchiveResult, error) {
	q := "/v1/archive?path=" + url.QueryEscape(path) + "&max_bytes=" + strconv.FormatInt(maxBytes, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://supervisor"+q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, wire.DecodeErr(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return nil, c.transportErr(ctx, err)
	}
	if e := resp.Trailer.Get(errorTrailer); e != "" {
		var we WireError
		if json.Unmarshal([]byte(e), &we) == nil {
			return nil, wire.FromWire(&we)
		}
	}
	var res ArchiveResult
	if err := json.Unmarshal([]byte(resp.Trailer.Get(resultTrailer)), &res); err != nil {
		return nil, errdefs.New(errdefs.ErrUnavailable, errdefs.CodeSupervisorUnavailable, "the archive stream ended early")
	}
	return &res, nil
}

func (c *Client) transportErr(ctx context.Context, err error) error { return wire.Unanswered(ctx, err) }

func (c *Client) Sync(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/sync", nil, "", nil)
}

// Shutdown asks the supervisor to flush and power off its VM, then exit.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/shutdown", nil, "", nil)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wire.DecodeErr(resp)
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, 64<<20))
	if out == nil {
		return nil
	}
	if err := dec.Decode(out); err != nil {
		return errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "bad supervisor answer")
	}
	return nil
}

// Launch starts `bin __supervise specPath` (bin is pyro-supervisor or pyro,
// see Binary) in its own session and waits for
// its ready line. The supervisor outlives the caller; logPath gets its
// stderr, and pidPath its pid and start time (an Info with only those) at
// once, so that it can be found and stopped before it is ready, should the
// caller die.
func Launch(ctx context.Context, bin, specPath, logPath, pidPath string, timeout time.Duration) (*Info, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.Close()
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, SubcommandName, specPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w} // fd 3: the ready pipe
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, errdefs.Wrap(err, errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
				"workspaces need the pyro binary to run their supervisor, and %q is not found: install it "+
					"(go install github.com/pyrovm/pyro/cmd/...@latest), or point PYRO_BIN or pyro.WithPyroBinary at it", bin)
		}
		return nil, errdefs.Wrap(err, errdefs.ErrFailedPrecondition, errdefs.CodeInternal,
			"start the workspace supervisor %s (set PYRO_BIN to the pyro binary)", bin)
	}
	w.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it if it ends while we live
	// stop ends a supervisor that did not get ready: TERM lets it tear its
	// VM down; KILL (its VMM dies with it) if it takes too long.
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		b, err := bufio.NewReader(r).ReadBytes('\n')
		ch <- line{b, err}
	}()
	// Whatever goes wrong, no supervisor is left running (stop returns at
	// once for one that already exited).
	ok := false
	defer func() {
		if !ok {
			stop()
		}
	}()
	pid := cmd.Process.Pid
	if err := fsutil.WriteJSONAtomic(pidPath, Info{Pid: pid, PidStart: vm.ProcStart(pid)}, 0o600); err != nil {
		return nil, err
	}
	select {
	case l := <-ch:
		if len(l.b) == 0 {
			return nil, errdefs.New(errdefs.ErrUnavailable, errdefs.CodeBootFailed,
				"the workspace supervisor exited before it was ready: %s", tail(logPath))
		}
		var rd Ready
		if err := json.Unmarshal(l.b, &rd); err != nil {
			return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "bad ready line from supervisor")
		}
		if rd.Error != nil {
			return nil, wire.FromWire(rd.Error)
		}
		if rd.Info == nil || rd.Info.API != APIVersion {
			// A pyro-supervisor left from another pyro version beside a new
			// pyro: its VM would answer every call with supervisor_outdated.
			return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeSupervisorOutdated,
				"%s speaks supervisor API %d, this pyro %d: install pyro and %s from the same build "+
					"(make build, or go install github.com/pyrovm/pyro/cmd/...@VERSION)", bin, apiOf(rd.Info), APIVersion, BinaryName)
		}
		ok = true
		return rd.Info, nil
	case <-time.After(timeout):
		return nil, errdefs.New(errdefs.ErrUnavailable, errdefs.CodeBootFailed, "the workspace did not boot within %s: %s", timeout, tail(logPath))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func apiOf(i *Info) int {
	if i == nil || i.API == 0 {
		return 1
	}
	return i.API
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if s == "" {
		return "(no log)"
	}
	return fmt.Sprintf("\n%s", s)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, strings.NewReader(string(b)), "application/json", out)
}

// OpenShell opens a PTY shell in the guest.
func (c *Client) OpenShell(ctx context.Context, req ShellOpenRequest) (*shell.Info, error) {
	var i shell.Info
	return &i, c.post(ctx, "/v1/shells", req, &i)
}

// Shells lists the shells this supervisor holds (closed ones included).
func (c *Client) Shells(ctx context.Context) ([]shell.Info, error) {
	var l []shell.Info
	return l, c.do(ctx, http.MethodGet, "/v1/shells", nil, "", &l)
}

// ReadShell reads a shell's output from a cursor.
func (c *Client) ReadShell(ctx context.Context, id string, req ShellReadRequest) (*shell.ReadResult, error) {
	var r shell.ReadResult
	return &r, c.post(ctx, "/v1/shells/"+url.PathEscape(id)+"/read", req, &r)
}

// ShellInput writes input to a shell, signals it or resizes it.
func (c *Client) ShellInput(ctx context.Context, id string, req ShellInputRequest) (*shell.Info, error) {
	var i shell.Info
	return &i, c.post(ctx, "/v1/shells/"+url.PathEscape(id)+"/input", req, &i)
}

// CloseShell hangs a shell up.
func (c *Client) CloseShell(ctx context.Context, id string) (*shell.Info, error) {
	var i shell.Info
	return &i, c.do(ctx, http.MethodDelete, "/v1/shells/"+url.PathEscape(id), nil, "", &i)
}

// StartService starts a service and waits until it is ready or has failed.
func (c *Client) StartService(ctx context.Context, req ServiceStartRequest) (*ServiceStartResult, error) {
	var r ServiceStartResult
	return &r, c.post(ctx, "/v1/services", req, &r)
}

// Services lists the workspace's services.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var l []Service
	return l, c.do(ctx, http.MethodGet, "/v1/services", nil, "", &l)
}

// ServiceStatus describes one service.
func (c *Client) ServiceStatus(ctx context.Context, name string) (*Service, error) {
	var i Service
	return &i, c.do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(name), nil, "", &i)
}

// ServiceLogs returns the last tailLines lines (0 = all, within maxBytes) of a service's log.
func (c *Client) ServiceLogs(ctx context.Context, name string, tailLines int, maxBytes int64) (*agentproto.ServiceLogs, error) {
	var l agentproto.ServiceLogs
	q := fmt.Sprintf("/v1/services/%s/logs?tail_lines=%d&max_bytes=%d", url.PathEscape(name), tailLines, maxBytes)
	return &l, c.do(ctx, http.MethodGet, q, nil, "", &l)
}

// StopService stops a service: TERM, then KILL after a grace period.
func (c *Client) StopService(ctx context.Context, name string) (*Service, error) {
	var i Service
	return &i, c.do(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(name)+"/stop", nil, "", &i)
}

// Network describes the VM's network (policy off: no device).
func (c *Client) Network(ctx context.Context) (*network.Info, error) {
	var i network.Info
	return &i, c.do(ctx, http.MethodGet, "/v1/network", nil, "", &i)
}

// Pause saves the machine into the supervisor's pause dir; the supervisor
// then exits. A caller that dies meanwhile does not stop it.
func (c *Client) Pause(ctx context.Context) (*Paused, error) {
	var p Paused
	return &p, c.do(ctx, http.MethodPost, "/v1/pause", nil, "", &p)
}

// ForkSave saves the running machine for forks (see ForkRequest); the
// workspace goes on running.
func (c *Client) ForkSave(ctx context.Context, req ForkRequest) (*Paused, error) {
	var p Paused
	return &p, c.post(ctx, "/v1/fork", req, &p)
}

// SetIdle changes the idle time after which the workspace pauses itself (0: never).
func (c *Client) SetIdle(ctx context.Context, seconds int) error {
	b, _ := json.Marshal(IdleRequest{IdlePauseSeconds: seconds})
	return c.do(ctx, http.MethodPut, "/v1/idle", strings.NewReader(string(b)), "application/json", nil)
}

// ReadPaused reads the description of the machine saved in a pause dir; a
// missing or damaged one means there is none (a pause that never finished).
func ReadPaused(dir string) (*Paused, error) {
	b, err := os.ReadFile(filepath.Join(dir, PausedMetaFile))
	if err != nil {
		return nil, err
	}
	var p Paused
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
