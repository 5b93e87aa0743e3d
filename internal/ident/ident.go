// Package ident is how pyro names what it records on the host: the ids of
// VMs and workspaces, and a process run (pid plus start time, tagged with
// the boot) that a later process can check is still the same one. It is
// light on purpose: the CLI's fast path checks a workspace's supervisor
// with it without linking the VMM code.
package ident

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// NewID returns a short random id (not guessable, not a counter).
func NewID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// ValidID reports whether s is shaped like an id from NewID (VMs and
// workspaces): 12 lower-case hex digits. (No regexp: compiling one costs
// every CLI process that looks at its workspaces ~40 us.)
func ValidID(s string) bool { return len(s) == 12 && strings.Trim(s, "0123456789abcdef") == "" }

// procStat returns the state letter and start time (clock ticks since boot)
// of pid, or ("", 0) if it is gone.
func procStat(pid int) (state string, start uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	// The command name may contain spaces and parens: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", 0
	}
	start, _ = strconv.ParseUint(fields[19], 10, 64) // field 22 overall
	return fields[0], start
}

// ProcStart identifies pid's run for Alive: its start time in clock ticks
// since boot, tagged with this boot (ProcStartOfBoot), 0 if gone.
func ProcStart(pid int) uint64 { return ProcStartOfBoot(pid, thisBoot()) }

// ProcStartOfBoot is ProcStart as it reads during the boot bootID names.
// Records (supervisor.json, owner.json...) outlive a host reboot, and the
// next boot counts pids and ticks from the start again: without the tag, a
// record could name an unrelated process of the new boot that has the same
// pid and start tick, which pyro would then take for its own (and kill).
// The top 24 bits hold a hash of the boot id; ticks at 100 Hz reach 2^40
// only after 348 years.
func ProcStartOfBoot(pid int, bootID string) uint64 {
	_, start := procStat(pid)
	if start == 0 {
		return 0
	}
	return start&(1<<40-1) | bootTag(bootID)
}

func bootTag(bootID string) uint64 {
	if bootID == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(bootID))
	return (h.Sum64()&(1<<24-1) | 1) << 40 // never 0: a tagged start never equals an untagged one
}

// thisBoot is the kernel's id of the running boot ("" when unreadable:
// starts are then untagged, as before tags).
var thisBoot = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// Alive reports whether pid still is the process that started at start. A
// zombie (dead, not yet reaped by its parent) is not alive.
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, st := procStat(pid)
	if state == "Z" || state == "X" || state == "" {
		return false
	}
	// An untagged start is a record written before boot tags: taken as is.
	return start == 0 || st|bootTag(thisBoot()) == start || st == start
}
