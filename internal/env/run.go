package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

const (
	tailLines = 20
	// waitDelay bounds how long we wait for output pipes after the process
	// exited or was killed (a stray grandchild could hold them open).
	waitDelay = 10 * time.Second
)

// runner executes the external commands of one build. Every command's
// combined output is appended to one log file in the build directory; on
// failure the log is copied to keepDir (the build directory is deleted) and
// the error carries the last lines.
type runner struct {
	what    string // "kernel build", "debootstrap debian:12", ...
	logPath string
	keepDir string
	env     []string
	log     *os.File
}

func newRunner(what, buildDir, keepDir string, env []string) (*runner, error) {
	logPath := filepath.Join(buildDir, "build.log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, buildErr(err, "%s: creating log", what)
	}
	return &runner{what: what, logPath: logPath, keepDir: keepDir, env: env, log: f}, nil
}

func (r *runner) close() { r.log.Close() }

// logf writes a note into the build log.
func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "# "+format+"\n", args...)
}

// run executes name with args in dir. onLine (may be nil) receives every
// output line, called from this goroutine. The process runs in its own
// process group, which is killed as a whole when ctx ends.
func (r *runner) run(ctx context.Context, dir string, onLine func(string), name string, args ...string) error {
	path, err := lookTool(name)
	if err != nil {
		// Up-front checks make this rare; still say which package to install.
		return checkTools(hostTool{Cmd: name, Package: packageFor(name)})
	}
	if err := ctx.Err(); err != nil {
		return ctxError(ctx, r.what)
	}
	cmdline := name + " " + strings.Join(args, " ")
	fmt.Fprintf(r.log, "$ (cd %s && %s)\n", dir, cmdline)

	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Negative pid: the whole process group (make's children, mmdebstrap's helpers).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	lines := make(chan string, 256)
	w := &lineWriter{log: r.log, lines: lines}
	cmd.Stdout = w
	cmd.Stderr = w

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return buildErr(err, "%s: starting %s", r.what, name)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		w.flush()
		close(lines)
		done <- err
	}()
	tail := make([]string, 0, tailLines)
	for line := range lines {
		if len(tail) == tailLines {
			copy(tail, tail[1:])
			tail = tail[:tailLines-1]
		}
		tail = append(tail, line)
		if onLine != nil {
			onLine(line)
		}
	}
	err = <-done
	fmt.Fprintf(r.log, "# %s: %v after %s\n", name, exitText(err), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		return ctxError(ctx, r.what)
	}
	if err != nil {
		kept := r.keepLog()
		msg := fmt.Sprintf("%s: %q failed: %v", r.what, shortCmd(name, args), err)
		if kept != "" {
			msg += " (full log: " + kept + ")"
		}
		if len(tail) > 0 {
			msg += "\nlast lines of output:\n  " + strings.Join(tail, "\n  ")
		}
		return &errdefs.Error{Code: errdefs.CodeEnvironmentBuild, Class: errdefs.ErrInternal, Message: msg, Cause: err}
	}
	return nil
}

// keepLog copies the build log out of the (soon deleted) build directory.
func (r *runner) keepLog() string {
	if r.keepDir == "" {
		return ""
	}
	if err := os.MkdirAll(r.keepDir, 0o755); err != nil {
		return ""
	}
	slug := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			return c
		}
		return '-'
	}, strings.ToLower(r.what))
	dst := filepath.Join(r.keepDir, fmt.Sprintf("%s-%s.log", slug, time.Now().UTC().Format("20060102T150405.000")))
	r.log.Sync()
	if err := fsutil.CopyFile(r.logPath, dst, 0o644); err != nil {
		return ""
	}
	return dst
}

func shortCmd(name string, args []string) string {
	s := name + " " + strings.Join(args, " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func exitText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// packageFor names the Debian package of a command used by a build.
func packageFor(cmd string) string {
	for _, group := range [][]hostTool{kernelTools, baseTools, imageTools} {
		for _, t := range group {
			if t.Cmd == cmd {
				return t.Package
			}
		}
	}
	return cmd
}

// ctxError turns the end of ctx into a typed error (canceled or timed out).
func ctxError(ctx context.Context, what string) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return errdefs.Wrap(err, errdefs.ErrDeadlineExceeded, errdefs.CodeTimeout, "%s timed out", what)
	}
	return errdefs.Wrap(err, errdefs.ErrCanceled, errdefs.CodeCanceled, "%s canceled", what)
}

// lineWriter tees command output into the log and splits it into lines.
// exec calls Write from one goroutine at a time (Stdout == Stderr).
type lineWriter struct {
	mu      sync.Mutex
	log     *os.File
	lines   chan<- string
	partial []byte
}

const maxLine = 4096

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log.Write(p)
	for _, b := range p {
		switch {
		case b == '\n' || b == '\r':
			w.emit()
		case len(w.partial) < maxLine:
			w.partial = append(w.partial, b)
		}
	}
	return len(p), nil
}

func (w *lineWriter) emit() {
	if len(w.partial) == 0 {
		return
	}
	w.lines <- string(w.partial)
	w.partial = w.partial[:0]
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit()
}
