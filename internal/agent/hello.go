//go:build linux

package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Limits of what a HelloRequest may ask for.
const (
	// clockTolerance is how far the guest clock may be from the host's
	// before hello sets it. The host's time is a few ms old when it arrives.
	clockTolerance = 10 * time.Millisecond
	// maxEntropy bounds the entropy credited per hello (the host sends 64 bytes).
	maxEntropy = 4096
)

// minHostTime rejects a host clock that cannot be right (before 2024).
var minHostTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// helloCall answers OpHello. With a request it first sets the clock and
// reseeds the kernel RNG: a guest restored from a memory snapshot wakes with
// the clock of the moment it was saved and with the same random state as
// every other restore of that snapshot. Then it configures the network, if
// the request has one. Only PID 1 touches the system: the agent's tests run
// it as an ordinary process on the host.
func (s *server) helloCall(fw *frameWriter, req *agentproto.HelloRequest) error {
	if req != nil && os.Getpid() == 1 {
		if err := applyHello(req); err != nil {
			return wireError(agentproto.ErrCodeInternal, "%v", err)
		}
	}
	return fw.json(agentproto.FrameResult, hello())
}

func applyHello(req *agentproto.HelloRequest) error {
	if len(req.Entropy) > maxEntropy {
		return fmt.Errorf("hello: %d bytes of entropy, at most %d", len(req.Entropy), maxEntropy)
	}
	// Validate the network before anything changes: a bad request touches nothing.
	var network *netConfig
	if req.Network != nil {
		n, err := parseNetConfig(req.Network)
		if err != nil {
			return err
		}
		network = n
	}
	if req.MachineID != "" && !validMachineID(req.MachineID) {
		return fmt.Errorf("hello: machine id %q is not 32 lowercase hex digits", req.MachineID)
	}
	if req.HostTimeUnixNano != 0 {
		if req.HostTimeUnixNano < minHostTime {
			return fmt.Errorf("hello: host time %d is implausible", req.HostTimeUnixNano)
		}
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &now); err != nil {
			return fmt.Errorf("hello: read the clock: %w", err)
		}
		if clockNeedsSet(now.Nano(), req.HostTimeUnixNano) {
			ts := unix.NsecToTimespec(req.HostTimeUnixNano)
			if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
				return fmt.Errorf("hello: set the clock: %w", err)
			}
		}
	}
	if len(req.Entropy) > 0 {
		if err := addEntropy(req.Entropy); err != nil {
			return fmt.Errorf("hello: reseed the kernel RNG: %w", err)
		}
	}
	if network != nil {
		if err := applyNetwork(network); err != nil {
			return err
		}
	}
	if req.MachineID != "" {
		if err := setMachineID(machineIDPath, req.MachineID); err != nil {
			return fmt.Errorf("hello: set the machine id: %w", err)
		}
	}
	return nil
}

// machineIDPath is systemd's machine id file; images without one keep none.
const machineIDPath = "/etc/machine-id"

// validMachineID reports whether id is a machine id: 32 lowercase hex digits.
func validMachineID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// setMachineID writes id to path where the image has a non-empty file
// there (an empty one means "generate at first boot" to systemd: left so).
func setMachineID(path, id string) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(id+"\n"), 0o444)
}

// clockNeedsSet reports whether a guest clock reading guestNs is too far
// from the host's hostNs (both Unix nanoseconds).
func clockNeedsSet(guestNs, hostNs int64) bool {
	d := guestNs - hostNs
	if d < 0 {
		d = -d
	}
	return d > int64(clockTolerance)
}

// ioctls of linux/random.h (the numbers come from golang.org/x/sys/unix).
// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }:
// entropy_count in bits, buf_size in bytes.
const randPoolHeader = 8

// urandom is /dev/urandom for addEntropy, opened by the first hello and
// kept (a raw descriptor, outside Go's poller): a restored guest's hello
// then runs no open and close, which cost 12-23 ms of cold code under TCG
// right after a restore (measured in the agent, 2026-12-05).
var urandom struct {
	sync.Mutex
	fd   int
	open bool
}

func urandomFD() (int, error) {
	urandom.Lock()
	defer urandom.Unlock()
	if urandom.open {
		return urandom.fd, nil
	}
	fd, err := unix.Open("/dev/urandom", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	urandom.fd, urandom.open = fd, true
	return fd, nil
}

// addEntropy mixes b into the kernel's input pool, credits it in full (the
// host drew it from its own CSPRNG) and makes the CRNG reseed at once, so
// that every later read of /dev/urandom or getrandom differs between two
// restores of one snapshot.
func addEntropy(b []byte) error {
	fd, err := urandomFD()
	if err != nil {
		return err
	}
	buf := make([]byte, randPoolHeader+len(b))
	binary.NativeEndian.PutUint32(buf[0:], uint32(len(b)*8))
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(b)))
	copy(buf[randPoolHeader:], b)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("RNDADDENTROPY: %w", e)
	}
	// ENODATA: the CRNG was never seeded; it will be from this pool.
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.RNDRESEEDCRNG, 0); e != 0 && e != unix.ENODATA {
		return fmt.Errorf("RNDRESEEDCRNG: %w", e)
	}
	return nil
}
