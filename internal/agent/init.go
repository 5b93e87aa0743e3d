//go:build linux

package agent

import (
	"errors"
	"log"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// hostname is the guest's name, the same in every VM.
const hostname = "pyro"

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// systemMounts are what a command expects to find; the kernel has already
// mounted / (rw) and devtmpfs on /dev.
var systemMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

// devLinks are the /dev symlinks udev or systemd would normally create; shells
// need /dev/fd for process substitution.
var devLinks = map[string]string{
	"/dev/ptmx":   "pts/ptmx",
	"/dev/fd":     "/proc/self/fd",
	"/dev/stdin":  "/proc/self/fd/0",
	"/dev/stdout": "/proc/self/fd/1",
	"/dev/stderr": "/proc/self/fd/2",
}

// initSystem does the minimum an init must do before running commands. Each
// step only logs on failure: a half set up guest is still more useful than a
// kernel panic from PID 1 exiting.
func initSystem() {
	shieldSignals()
	guardChannel()
	for _, m := range systemMounts {
		if err := mountOnce(m); err != nil {
			log.Printf("mount %s: %v", m.target, err)
		}
	}
	// Optional: the guest kernel may be built without cgroups.
	_ = mountOnce(mount{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""})
	for link, target := range devLinks {
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(target, link); err != nil {
				log.Printf("symlink %s: %v", link, err)
			}
		}
	}
	loadImageEnv(agentproto.ImageEnvPath)
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		log.Printf("sethostname: %v", err)
	}
	if err := loopbackUp(); err != nil {
		log.Printf("bringing up lo: %v", err)
	}
}

// shieldSignals keeps stray signals from killing PID 1. The kernel only
// protects init from signals it has no handler for, but the Go runtime
// handles them all and exits on these when nobody listens (a guest command
// doing `kill -TERM 1` would panic the kernel). Listening keeps them from
// being ignored (SIG_IGN), which commands would inherit across exec.
// SEGV, BUS and FPE sent by kill (si_code SI_USER) are delivered to a
// listener by the runtime (sigFromUser in runtime/signal_unix.go) instead
// of crashing it; a real fault still panics, as it must.
func shieldSignals() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGABRT, unix.SIGTERM,
		unix.SIGILL, unix.SIGTRAP, unix.SIGSTKFLT, unix.SIGSYS, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE)
	go func() {
		for sig := range sigs {
			log.Printf("ignoring signal %v", sig)
		}
	}()
}

// guardChannel keeps guest commands away from the agent's channel. A root
// command could copy the agent's virtio-serial fd (pidfd_getfd, ptrace,
// /proc/1/fd) and write frames into the host session. All three need ptrace
// access to PID 1, which the kernel refuses to a caller without
// CAP_SYS_PTRACE once the target is not dumpable (__ptrace_may_access). So
// the agent makes itself non-dumpable (children are dumpable again after
// exec) and drops CAP_SYS_PTRACE from the bounding set of every thread, so
// that no command it starts can hold it. Root commands can still trace any
// dumpable root process (same uid needs no capability): strace -p and
// gdb -p work.
func guardChannel() {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		log.Printf("PR_SET_DUMPABLE: %v", err)
	}
	// The bounding set is per thread and a fork copies the forking thread's.
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, unix.CAP_SYS_PTRACE, 0); errno != 0 {
		log.Printf("dropping CAP_SYS_PTRACE from the bounding set: %v", errno)
	}
}

// mountOnce mounts m, treating "already mounted" as success.
func mountOnce(m mount) error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return err
	}
	err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
	if errors.Is(err, unix.EBUSY) {
		return nil
	}
	return err
}

// loopbackUp sets IFF_UP on lo, which is all localhost networking needs.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
