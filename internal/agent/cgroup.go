//go:build linux

package agent

import (
	"bufio"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Commands run in cgroups beside the agent's, so a fork bomb or a memory hog
// exhausts its own allowance and not the guest: the agent (PID 1, in
// agentGroup) stays responsive and timeouts hold. Every process the agent
// starts gets a fresh group under commandsGroup with callPids processes at
// most; all of them together get commandsPids processes and the guest's
// memory minus a reserve for the kernel and the agent. A bomb left running
// by one exec thus fills its own group, and the next exec still forks.
const (
	cgroupRoot    = "/sys/fs/cgroup"
	commandsGroup = cgroupRoot + "/pyro-commands"
	// agentGroup holds the agent with the largest CPU weight. In the root
	// cgroup it was one task against each command's whole group: the
	// scheduler let a just-started command's group run on before the agent
	// resumed from the fork, 3-4 ms of every exec under emulation (the fork
	// returned after 7 ms instead of 3). As the heaviest peer the agent gets
	// the CPU whenever it wants it, which is seldom and briefly.
	agentGroup     = cgroupRoot + "/pyro-agent"
	agentCPUWeight = 10000
	callPids       = 512
	commandsPids   = 2048
	// memReserve is kept out of the commands' reach: at least this, or an
	// eighth of the guest's memory when that is more.
	memReserve = 64 << 20
)

// cgroups hands out one group per started process. Making and removing a
// group costs more than a short command's own start under emulation
// (mkdir, pids.max, rmdir, a directory scan: 4-5 ms of a 25 ms exec), so a
// group whose processes have all exited is kept, with its descriptor, and
// handed to the next process: a reused group is empty and has its
// pids.max, the same as a new one. Groups still holding processes (a
// command's background job, a fork bomb) are never reused; they are
// removed once empty.
type cgroups struct {
	// sorting serializes tidy: a take that finds no idle group must wait
	// for a tidy in flight (after the previous answer), which may hold the
	// very group it would reuse.
	sorting sync.Mutex
	mu      sync.Mutex
	seq     uint64
	idle    []*cgroup       // empty, ready for the next process
	used    map[int]*cgroup // pid -> its group, until the pid is reaped
	left    []*cgroup       // groups of reaped processes: maybe empty, maybe not
}

// cgroup is one command's group and an O_PATH descriptor of it for
// CLONE_INTO_CGROUP.
type cgroup struct {
	dir string
	fd  int
}

// maxIdle bounds the empty groups kept for reuse (concurrent commands each
// need one; more than a few is rare).
const maxIdle = 4

// setupCgroups enables the pids, memory and cpu controllers for the
// commands' tree. It returns nil (no limits) when the kernel lacks them:
// a guest without limits is still usable.
func setupCgroups() *cgroups {
	if err := setupCgroupsErr(); err != nil {
		log.Printf("command limits off: %v", err)
		return nil
	}
	return &cgroups{used: map[int]*cgroup{}}
}

func setupCgroupsErr() error {
	// cpu is optional: with it, the agent competes with all commands as one
	// peer rather than with each of their processes (the kernel needs
	// CONFIG_FAIR_GROUP_SCHED for it).
	_ = writeCgroup(cgroupRoot, "cgroup.subtree_control", "+cpu")
	if err := writeCgroup(cgroupRoot, "cgroup.subtree_control", "+pids +memory"); err != nil {
		return err
	}
	if err := os.Mkdir(commandsGroup, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	if err := writeCgroup(commandsGroup, "pids.max", strconv.Itoa(commandsPids)); err != nil {
		return err
	}
	if total, err := memTotal(); err == nil {
		reserve := max(int64(memReserve), total/8)
		if err := writeCgroup(commandsGroup, "memory.max", strconv.FormatInt(max(total-reserve, total/2), 10)); err != nil {
			return err
		}
	}
	if err := writeCgroup(commandsGroup, "cgroup.subtree_control", "+pids +memory"); err != nil {
		return err
	}
	// Each command's group a CPU peer of the others: a bomb's hundreds of
	// processes then get one share, and the next command another.
	_ = writeCgroup(commandsGroup, "cgroup.subtree_control", "+cpu")
	joinAgentGroup()
	return nil
}

// joinAgentGroup moves the agent into agentGroup (a cgroup with processes
// cannot also have controlled children, hence a group of its own rather
// than commandsGroup's parent). Without the cpu controller it stays where
// it is: the weight is the point.
func joinAgentGroup() {
	if err := os.Mkdir(agentGroup, 0o755); err != nil && !os.IsExist(err) {
		log.Printf("agent cgroup: %v", err)
		return
	}
	if err := writeCgroup(agentGroup, "cpu.weight", strconv.Itoa(agentCPUWeight)); err != nil {
		return
	}
	if err := writeCgroup(agentGroup, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
		log.Printf("agent cgroup: %v", err)
	}
}

// take returns an empty group for the next process: a kept one, or a
// new one. The caller starts one process in it and then calls started (or
// giveBack when the start failed).
func (c *cgroups) take() (*cgroup, error) {
	if g := c.reuse(); g != nil {
		return g, nil
	}
	// Nothing sorted yet (a shell or service ended, no exec since): sort now.
	c.tidy()
	if g := c.reuse(); g != nil {
		return g, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	dir := filepath.Join(commandsGroup, fmt.Sprintf("c%d", c.seq))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeCgroup(dir, "pids.max", strconv.Itoa(callPids)); err != nil {
		_ = os.Remove(dir)
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, err
	}
	return &cgroup{dir: dir, fd: fd}, nil
}

// reuse pops an idle group, or returns nil.
func (c *cgroups) reuse() *cgroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.idle)
	if n == 0 {
		return nil
	}
	g := c.idle[n-1]
	c.idle = c.idle[:n-1]
	return g
}

// started records that pid runs in g.
func (c *cgroups) started(pid int, g *cgroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used[pid] = g
}

// giveBack returns a group no process was started in.
func (c *cgroups) giveBack(g *cgroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = append(c.idle, g)
}

// reaped notes that pid is gone; its group may still hold its descendants.
func (c *cgroups) reaped(pid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.used[pid]; ok {
		delete(c.used, pid)
		c.left = append(c.left, g)
	}
}

// tidy sorts the groups of reaped processes: empty ones become idle (up to
// maxIdle, the rest are removed), the others are looked at again next time.
// It runs after a call has answered, off the command's path.
func (c *cgroups) tidy() {
	c.sorting.Lock()
	defer c.sorting.Unlock()
	c.mu.Lock()
	left := c.left
	c.left = nil
	c.mu.Unlock()
	var busy, empty []*cgroup
	for _, g := range left {
		if populated(g.dir) {
			busy = append(busy, g)
		} else {
			empty = append(empty, g)
		}
	}
	c.mu.Lock()
	c.left = append(c.left, busy...)
	for _, g := range empty {
		if len(c.idle) < maxIdle {
			c.idle = append(c.idle, g)
			continue
		}
		unix.Close(g.fd)
		_ = unix.Rmdir(g.dir) // EBUSY if a root command moved a process in: left behind
	}
	c.mu.Unlock()
}

// populated reports whether a group (or a group below it) holds a live
// process; an unreadable group counts as populated (never reused).
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return v != "0"
		}
	}
	return true
}

func writeCgroup(dir, file, value string) error {
	return os.WriteFile(filepath.Join(dir, file), []byte(value), 0)
}

// memTotal is the guest's memory in bytes.
func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
