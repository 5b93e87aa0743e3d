//go:build linux

package agent

import (
	"os"
	"syscall"
)

// proc is a running command and the parent's ends of its stdio.
type proc struct {
	pid    int
	exited <-chan syscall.WaitStatus
	stdin  *os.File // nil when the command reads /dev/null
	stdout *os.File
	stderr *os.File
}

// spawn starts argv in its own process group (so it can be killed as a whole)
// with piped stdout and stderr, and piped stdin when withStdin is set.
func spawn(r *reaper, path string, argv, env []string, dir string, withStdin bool) (*proc, error) {
	p := &proc{}
	var child [3]*os.File // the command's ends; it has its own copies once started
	defer func() {
		for _, f := range child {
			if f != nil {
				f.Close()
			}
		}
	}()
	var err error
	if withStdin {
		child[0], p.stdin, err = os.Pipe()
	} else {
		child[0], err = os.Open(os.DevNull)
	}
	if err == nil {
		p.stdout, child[1], err = os.Pipe()
	}
	if err == nil {
		p.stderr, child[2], err = os.Pipe()
	}
	if err == nil {
		// Fd puts the child's ends back into blocking mode, as commands expect.
		p.pid, p.exited, err = r.start(path, argv, &syscall.ProcAttr{
			Dir:   dir,
			Env:   env,
			Files: []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd()},
			Sys:   &syscall.SysProcAttr{Setpgid: true},
		})
	}
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// close releases the parent's ends; closing stdin also unblocks a feeder
// writing to a command that never reads.
func (p *proc) close() {
	for _, f := range []*os.File{p.stdin, p.stdout, p.stderr} {
		if f != nil {
			f.Close()
		}
	}
}
