//go:build linux

package agent

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// stepClockForward sets CLOCK_REALTIME to sentNs (the host's clock when it
// sent a call) when the guest's clock is more than ClockStepMin behind it.
// Under software emulation a guest's jiffies clock loses ticks under load
// (7% was seen); stepping at every call keeps file times and `date` right
// where they matter. Never backwards: sentNs is older than the host's time
// by the call's transit, so a guest ahead of it may well be right. Only
// CLOCK_REALTIME moves; CLOCK_MONOTONIC, what timeouts and durations in the
// guest rely on, does not.
func stepClockForward(sentNs int64) error {
	if sentNs < minHostTime {
		return fmt.Errorf("host time %d is implausible", sentNs)
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &now); err != nil {
		return fmt.Errorf("read the clock: %w", err)
	}
	if !clockBehind(now.Nano(), sentNs) {
		return nil
	}
	ts := unix.NsecToTimespec(sentNs)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("set the clock: %w", err)
	}
	return nil
}

// clockBehind reports whether a guest clock reading guestNs is more than
// ClockStepMin behind the host's sentNs (both Unix nanoseconds).
func clockBehind(guestNs, sentNs int64) bool {
	return sentNs-guestNs > int64(agentproto.ClockStepMin)
}
