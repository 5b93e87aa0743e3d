//go:build linux

package agent

import (
	"os"
	"path/filepath"
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
	for _, id := range []string{"x", "../../etc/passwd", "0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcdef\n"} {
		if err := applyHello(&agentproto.HelloRequest{MachineID: id}); err == nil {
			t.Errorf("machine id %q accepted", id)
		}
	}
}

func TestSetMachineID(t *testing.T) {
	dir := t.TempDir()
	const id = "0123456789abcdef0123456789abcdef"
	full, empty, missing := filepath.Join(dir, "full"), filepath.Join(dir, "empty"), filepath.Join(dir, "missing")
	os.WriteFile(full, []byte("ffffffffffffffffffffffffffffffff\n"), 0o444)
	os.WriteFile(empty, nil, 0o444)
	for _, p := range []string{full, empty, missing} {
		if err := setMachineID(p, id); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(full); string(b) != id+"\n" {
		t.Errorf("an image's machine id became %q", b)
	}
	if b, err := os.ReadFile(empty); err != nil || len(b) != 0 {
		t.Errorf("an empty machine id (systemd: make one at boot) became %q, %v", b, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("an image without a machine id got one: %v", err)
	}
}
