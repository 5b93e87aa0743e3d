//go:build linux

package agent

import (
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

func TestClockNeedsSet(t *testing.T) {
	host := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()
	cases := []struct {
		guest time.Duration // guest clock minus host clock
		want  bool
	}{
		{0, false},
		{3 * time.Millisecond, false},
		{-clockTolerance, false},
		{clockTolerance + 1, true},
		{-20 * time.Millisecond, true},
		{-36 * time.Hour, true}, // a snapshot restored a day and a half later
		{time.Hour, true},
	}
	for _, c := range cases {
		if got := clockNeedsSet(host+int64(c.guest), host); got != c.want {
			t.Errorf("guest off by %v: needs set = %v, want %v", c.guest, got, c.want)
		}
	}
}

func TestApplyHelloRejectsBadRequests(t *testing.T) {
	// Both are refused before anything touches the system.
	if err := applyHello(&agentproto.HelloRequest{Entropy: make([]byte, maxEntropy+1)}); err == nil {
		t.Error("oversized entropy accepted")
	}
	if err := applyHello(&agentproto.HelloRequest{HostTimeUnixNano: 12345}); err == nil {
		t.Error("a host time in 1970 accepted")
	}
}
