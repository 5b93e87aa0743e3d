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

	"golang.org/x/sys/unix"
)

// Commands run in cgroups below the agent's, so a fork bomb or a memory hog
// exhausts its own allowance and not the guest: the agent (PID 1, in the
// root cgroup) stays responsive and timeouts hold. Every process the agent
// starts gets a fresh group under commandsGroup with callPids processes at
// most; all of them together get commandsPids processes and the guest's
// memory minus a reserve for the kernel and the agent. A bomb left running
// by one exec thus fills its own group, and the next exec still forks.
const (
	cgroupRoot    = "/sys/fs/cgroup"
	commandsGroup = cgroupRoot + "/pyro-commands"
	callPids      = 512
	commandsPids  = 2048
	// memReserve is kept out of the commands' reach: at least this, or an
	// eighth of the guest's memory when that is more.
	memReserve = 64 << 20
)

// cgroups hands out one group per started process.
type cgroups struct {
	seq uint64
}

// setupCgroups enables the pids, memory and cpu controllers for the
// commands' tree. It returns nil (no limits) when the kernel lacks them:
// a guest without limits is still usable.
func setupCgroups() *cgroups {
	if err := setupCgroupsErr(); err != nil {
		log.Printf("command limits off: %v", err)
		return nil
	}
	return &cgroups{}
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
	return nil
}

// open makes a new group for one process and returns an fd for
// CLONE_INTO_CGROUP. Groups left empty by earlier processes are removed
// first; a group whose processes live on (a command's background job) stays.
// The caller serializes calls (the reaper's lock).
func (c *cgroups) open() (int, error) {
	c.sweep()
	c.seq++
	dir := filepath.Join(commandsGroup, fmt.Sprintf("c%d", c.seq))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return -1, err
	}
	if err := writeCgroup(dir, "pids.max", strconv.Itoa(callPids)); err != nil {
		_ = os.Remove(dir)
		return -1, err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return -1, err
	}
	return fd, nil
}

// sweep removes empty groups; rmdir refuses (EBUSY) those still in use.
func (c *cgroups) sweep() {
	entries, _ := os.ReadDir(commandsGroup)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "c") {
			_ = unix.Rmdir(filepath.Join(commandsGroup, e.Name()))
		}
	}
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
