//go:build linux

package agent

import (
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper owns wait4 for the whole process. As PID 1 the agent inherits every
// orphan and must reap it; wait4(-1) would then steal exits from os/exec, so
// processes are started through reaper.start and never waited on elsewhere.
type reaper struct {
	// mu is held across fork+registration and across every wait4, so a child
	// that exits immediately is only reaped once its waiter is registered.
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	// groups, when set (PID 1 with cgroups), puts every started process in
	// its own limited cgroup (cgroup.go).
	groups *cgroups
}

var (
	reaperOnce sync.Once
	theReaper  *reaper
)

// sharedReaper returns the process-wide reaper: wait4(-1) sees every child,
// so two reapers would steal from each other.
func sharedReaper() *reaper {
	reaperOnce.Do(func() {
		r := &reaper{waiters: make(map[int]chan syscall.WaitStatus)}
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGCHLD)
		go func() {
			for range sigs {
				r.reap()
			}
		}()
		theReaper = r
	})
	return theReaper
}

// reap collects every child that has exited. SIGCHLDs coalesce, hence the loop.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if r.groups != nil {
			r.groups.reaped(pid)
		}
		// Pids nobody registered are orphans re-parented to us: dropped.
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws
		}
	}
}

// tidyGroups sorts the cgroups of exited processes for reuse (cgroup.go);
// callers run it after answering, off a command's path.
func (r *reaper) tidyGroups() {
	r.mu.Lock()
	g := r.groups
	r.mu.Unlock()
	if g != nil {
		g.tidy()
	}
}

// start forks and execs argv0; the returned channel receives the exit status.
func (r *reaper) start(argv0 string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var group *cgroup
	if r.groups != nil {
		g, err := r.groups.take()
		if err != nil {
			// A root command may have torn the tree down (it can also leave it):
			// the command runs without limits rather than not at all.
			log.Printf("command runs without its cgroup: %v", err)
		} else {
			group = g
			var sys syscall.SysProcAttr // the caller's attr stays as it was
			if attr.Sys != nil {
				sys = *attr.Sys
			}
			sys.UseCgroupFD, sys.CgroupFD = true, g.fd
			a := *attr
			a.Sys = &sys
			attr = &a
		}
	}
	pid, err := forkChild(func() (int, error) { return syscall.ForkExec(argv0, argv, attr) })
	if err != nil {
		if group != nil {
			r.groups.giveBack(group)
		}
		return 0, nil, err
	}
	if group != nil {
		r.groups.started(pid, group)
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}
