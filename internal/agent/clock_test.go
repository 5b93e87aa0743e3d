//go:build linux

package agent

import (
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

func TestClockBehind(t *testing.T) {
	sent := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC).UnixNano()
	cases := []struct {
		guest time.Duration // guest clock minus the host's stamp
		want  bool
	}{
		{0, false},
		{-agentproto.ClockStepMin, false},
		{-agentproto.ClockStepMin - 1, true},
		{-24 * time.Second, true},     // 6 minutes of a lagging jiffies clock
		{5 * time.Millisecond, false}, // transit: the stamp is older than now
		{time.Hour, false},            // never backwards
	}
	for _, c := range cases {
		if got := clockBehind(sent+int64(c.guest), sent); got != c.want {
			t.Errorf("guest off by %v: behind = %v, want %v", c.guest, got, c.want)
		}
	}
}

func TestStepClockRejectsOldHostTime(t *testing.T) {
	// Refused before the clock is read or set (the test is not PID 1 and
	// could not set it anyway).
	if err := stepClockForward(12345); err == nil {
		t.Error("a host time in 1970 accepted")
	}
}
