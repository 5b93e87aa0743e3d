//go:build linux

package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Readiness checks of services: parsed from the request, probed inside the guest.

func (sp *startSpec) parseReadiness() error {
	bad := func(format string, args ...any) error {
		return wireError(agentproto.ErrCodeBadRequest, "ready_target: "+format, args...)
	}
	t := strings.TrimSpace(sp.target)
	switch sp.kind {
	case agentproto.ReadyNone:
		if t != "" {
			return bad("%q given without a ready_kind (file, tcp, http or command)", sp.target)
		}
	case agentproto.ReadyFile:
		if t == "" {
			return bad("readiness file needs a path")
		}
		sp.file = sp.target
		if !filepath.IsAbs(sp.file) {
			sp.file = filepath.Join(sp.cwd, sp.file)
		}
	case agentproto.ReadyTCP:
		host, port, err := parseTCPTarget(t)
		if err != nil {
			return bad("%v", err)
		}
		sp.host, sp.port = host, port
	case agentproto.ReadyHTTP:
		u, err := url.Parse(t)
		if err != nil || u.Scheme != "http" || u.Hostname() == "" {
			return bad("%q is not an http:// URL with a host", sp.target)
		}
		sp.port = 80
		if p := u.Port(); p != "" {
			if sp.port, err = parsePort(p); err != nil {
				return bad("%v", err)
			}
		}
		sp.host, sp.url = u.Hostname(), u.String()
	case agentproto.ReadyCommand:
		if t == "" {
			return bad("readiness command is empty")
		}
	default:
		return wireError(agentproto.ErrCodeBadRequest, "unknown ready_kind %q (want file, tcp, http or command)", sp.kind)
	}
	return nil
}

// parseTCPTarget takes "8080" (meaning 127.0.0.1:8080) or "host:port".
func parseTCPTarget(t string) (string, int, error) {
	if p, err := parsePort(t); err == nil {
		return "127.0.0.1", p, nil
	} else if !strings.Contains(t, ":") {
		return "", 0, err
	}
	host, ps, err := net.SplitHostPort(t)
	if err != nil {
		return "", 0, fmt.Errorf("%q is neither a port nor host:port", t)
	}
	p, err := parsePort(ps)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, p, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number in 1..65535", s)
	}
	return p, nil
}

// readiness describes the check, for messages: "tcp 8080".
func (sp *startSpec) readiness() string {
	if sp.kind == agentproto.ReadyNone {
		return "none"
	}
	return sp.kind + " " + sp.target
}

// probe runs one readiness check, bounded by min(interval*5, 5s) and the
// deadline.
func (s *server) probe(ctx context.Context, sp *startSpec, deadline time.Time) bool {
	if sp.kind == agentproto.ReadyNone {
		return true
	}
	attempt := min(sp.interval*5, maxProbeTimeout)
	if left := time.Until(deadline); left < attempt {
		attempt = max(left, minProbeTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, attempt)
	defer cancel()
	switch sp.kind {
	case agentproto.ReadyFile:
		_, err := os.Stat(sp.file)
		return err == nil
	case agentproto.ReadyTCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(sp.host, strconv.Itoa(sp.port)))
		if err != nil {
			return false
		}
		c.Close()
		return true
	case agentproto.ReadyHTTP:
		code, err := httpStatus(ctx, sp.host, sp.port, sp.url)
		return err == nil && code < 500
	case agentproto.ReadyCommand:
		return s.probeCommand(ctx, sp)
	}
	return false
}

// httpStatus sends one GET for rawURL to host:port and returns the status
// code of the answer. HTTP/1.1 by hand: net/http would more than double the
// size of the static agent for this one request.
func httpStatus(ctx context.Context, host string, port int, rawURL string) (int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pyro-agent/%s\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		u.RequestURI(), u.Host, Version)
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK"
	line, err := bufio.NewReaderSize(c, 512).ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("reading the status line: %w", err)
	}
	proto, rest, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
	codeStr, _, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if !strings.HasPrefix(proto, "HTTP/") || err != nil || code < 100 || code > 999 {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	return code, nil
}

// probeCommand runs `/bin/sh -lc TARGET` in the service's cwd and env, its
// output discarded, killed with its process group when ctx ends.
func (s *server) probeCommand(ctx context.Context, sp *startSpec) bool {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	fd := null.Fd()
	pid, exited, err := s.reaper.start("/bin/sh", []string{"/bin/sh", "-lc", sp.target}, &syscall.ProcAttr{
		Dir:   sp.cwd,
		Env:   sp.env,
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	null.Close()
	if err != nil {
		log.Printf("service %s: readiness command: %v", sp.name, err)
		return false
	}
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
	case <-ctx.Done():
		killGroup(pid)
		ws = <-exited
	}
	killGroup(pid) // background children of the check
	return !ws.Signaled() && ws.ExitStatus() == 0
}

// portAnswers reports whether something already accepts connections on the
// readiness port.
func portAnswers(host string, port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), portCheckTimeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
