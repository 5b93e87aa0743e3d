//go:build linux

package agent

import (
	"log"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The agent's threads run under SCHED_BATCH; the commands it starts run
// under SCHED_OTHER, as before.
//
// With SCHED_OTHER every wake-up of an agent thread (a pipe's end of
// output, SIGCHLD, a frame from the host, another of its own threads)
// preempted whatever ran, the agent being the heaviest CPU peer
// (agentGroup): an exiting command was cut off three times on its way out
// (stdout closed, stderr closed, SIGCHLD), and every switch between a
// command and the agent costs a full TLB refill under emulation (QEMU
// flushes its soft TLB on every address-space switch). A SCHED_BATCH task
// never preempts on wake-up (the kernel leaves that to the tick) but keeps
// its weight: it runs as soon as the running task sleeps or exits, and at
// the next tick (4 ms) at the latest while a command computes. Alternated
// exec by exec in one guest, it cut a `sh -c true` exec in the agent from
// 27 to 19 ms (the agent's own call as the host sees it), see
// docs/architecture.md.
const (
	schedOther = 0 // SCHED_OTHER (SCHED_NORMAL)
	schedBatch = 3 // SCHED_BATCH
)

// batched is set once every agent thread runs under SCHED_BATCH.
var batched atomic.Bool

// batchThreads moves every thread of the agent to SCHED_BATCH. The Go
// runtime starts its threads by cloning one of its own, and a clone
// inherits its parent's policy, so threads made later are batch too
// (forkChild makes sure no thread is cloned while one is not). Passes
// repeat while a thread made during a pass escaped it.
func batchThreads() error {
	for pass := 0; pass < 8; pass++ {
		changed, err := setThreadsPolicy(schedBatch)
		if err != nil {
			// Half done would leave some threads batch, and their
			// children with them: all back.
			_, _ = setThreadsPolicy(schedOther)
			return err
		}
		if changed == 0 {
			batched.Store(true)
			return nil
		}
	}
	batched.Store(true)
	return nil
}

// setThreadsPolicy sets policy on every thread that has another one and
// returns how many it changed.
func setThreadsPolicy(policy uint32) (int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if a, err := unix.SchedGetAttr(tid, 0); err == nil && a.Policy == policy {
			continue
		}
		if err := setPolicy(tid, policy); err == unix.ESRCH {
			continue // the thread ended meanwhile
		} else if err != nil {
			return changed, err
		}
		changed++
	}
	return changed, nil
}

// setPolicy sets a thread's policy (tid 0: the calling thread) at nice 0.
func setPolicy(tid int, policy uint32) error {
	return unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}, 0)
}

// forkChild runs fork (a fork and exec) so that the child gets SCHED_OTHER
// as before: a child inherits its parent thread's policy, so the forking
// thread drops to SCHED_OTHER for the fork and takes SCHED_BATCH back
// after. The goroutine is locked to its thread meanwhile; a thread the
// runtime needs while it is locked is cloned by the runtime's template
// thread, never by this one, so no other thread inherits SCHED_OTHER. If
// the drop fails, every thread goes back to SCHED_OTHER for good (the
// command must see what it always saw).
func forkChild(fork func() (int, error)) (int, error) {
	if !batched.Load() {
		return fork()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := setPolicy(0, schedOther); err != nil {
		log.Printf("scheduling policy: %v; the agent's threads go back to SCHED_OTHER", err)
		batched.Store(false)
		if _, err := setThreadsPolicy(schedOther); err != nil {
			log.Printf("scheduling policy: %v", err)
		}
		return fork()
	}
	pid, err := fork()
	if batched.Load() {
		if perr := setPolicy(0, schedBatch); perr != nil {
			log.Printf("scheduling policy: %v", perr)
		}
	}
	return pid, err
}
