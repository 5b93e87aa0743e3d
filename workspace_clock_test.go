package pyro_test

import (
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
)

// lineTimes records when each line of a command's streamed output reached
// the host.
type lineTimes struct {
	mu    sync.Mutex
	buf   []byte
	lines []string
	at    []time.Time
}

func (l *lineTimes) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		l.lines, l.at = append(l.lines, string(l.buf[:i])), append(l.at, now)
		l.buf = l.buf[i+1:]
	}
}

// guestTime parses `date +%s.%N`.
func guestTime(t *testing.T, s string) time.Time {
	t.Helper()
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		t.Fatalf("guest time %q: %v", s, err)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// invariantTSC reports whether this host's guests get a TSC clock under
// software emulation (see internal/vmm/qemu/tsc.go).
func invariantTSC(t *testing.T) bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return runtime.GOARCH == "amd64" && strings.Contains(s, " constant_tsc") && strings.Contains(s, " nonstop_tsc")
}

// TestGuestClock: a workspace guest's wall clock is right at every command
// start (a clock set back is stepped forward, one set ahead is left), and
// under software emulation it keeps time under load: after 30 s of a busy
// guest it is within 100 ms of the host's, and `sleep 5` takes 5 s.
func TestGuestClock(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	w := createWorkspace(t, c, "debian:12")
	ctx := t.Context()
	exec := func(cmd string, out io.Writer) string {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: cmd, TimeoutSeconds: 120, Stdout: out})
		if err != nil {
			t.Fatal(err)
		}
		if r.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s", cmd, r.ExitCode, r.Stderr)
		}
		return r.Stdout
	}

	t.Run("step", func(t *testing.T) {
		exec("date -s @$(( $(date +%s) - 60 )) >/dev/null", nil)
		before := time.Now()
		g := guestTime(t, exec("date +%s.%N", nil))
		after := time.Now()
		// The host stamps the call after `before`; the guest steps to the
		// stamp, and its `date` runs before the answer is back.
		if g.Before(before) || g.After(after) {
			t.Errorf("guest clock set back 60 s: next command saw %s, host %s .. %s", g.Format(time.StampMicro), before.Format(time.StampMicro), after.Format(time.StampMicro))
		}
		exec("date -s @$(( $(date +%s) + 60 )) >/dev/null", nil)
		if g := guestTime(t, exec("date +%s.%N", nil)); g.Sub(time.Now()) < 50*time.Second {
			t.Errorf("a guest clock 60 s ahead was stepped back: %s", time.Until(g))
		}
		exec("date -s @$(( $(date +%s) - 60 )) >/dev/null", nil) // back to the host's time
	})

	t.Run("load", func(t *testing.T) {
		if w.ExecutionMode != "guest_qemu_tcg" || !invariantTSC(t) {
			t.Skipf("execution mode %s: the TSC clock is for software emulation on a host with an invariant TSC", w.ExecutionMode)
		}
		if cs := strings.TrimSpace(exec("cat /sys/devices/system/clocksource/clocksource0/current_clocksource", nil)); cs != "tsc" {
			t.Fatalf("guest clocksource %q, want tsc", cs)
		}
		// Each line is timed on the host as it arrives. The busy loop ends
		// before the last `date`, so that its output is not held up.
		lt := &lineTimes{}
		exec(`date +%s.%N; echo a; sleep 5; echo b
(while :; do :; done) & busy=$!
sleep 30; kill $busy; date +%s.%N`, lt)
		if len(lt.lines) != 4 {
			t.Fatalf("output %q", lt.lines)
		}
		if d := lt.at[2].Sub(lt.at[1]); d < 4750*time.Millisecond || d > 5250*time.Millisecond {
			t.Errorf("guest `sleep 5` took %s of host time", d)
		}
		for _, i := range []int{0, 3} {
			g := guestTime(t, lt.lines[i])
			// The guest's `date` ran before its line reached the host: never
			// after (5 ms for the host's own clock reads), at most 100 ms before.
			if lag := lt.at[i].Sub(g); lag < -5*time.Millisecond || lag > 100*time.Millisecond {
				t.Errorf("line %d: guest clock %s, its line reached the host %s later", i, g.Format(time.StampMicro), lag)
			} else {
				t.Logf("line %d: the guest's time reached the host %s later", i, lag)
			}
		}
		t.Logf("`sleep 5`: %s of host time", lt.at[2].Sub(lt.at[1]))
	})

	// QEMU saves the guest's TSC as it stood when the machine stopped and
	// goes on from there at restore, whatever the host's TSC reads then
	// (after a host reboot too): the guest's monotonic clock does not
	// count the paused time, and the hello sets the wall clock.
	t.Run("pause", func(t *testing.T) {
		if w.ExecutionMode != "guest_qemu_tcg" || !invariantTSC(t) {
			t.Skipf("execution mode %s: the TSC clock is for software emulation on a host with an invariant TSC", w.ExecutionMode)
		}
		uptime := func() time.Duration {
			f, err := strconv.ParseFloat(strings.Fields(exec("cat /proc/uptime", nil))[0], 64)
			if err != nil {
				t.Fatal(err)
			}
			return time.Duration(f * float64(time.Second))
		}
		up0, host0 := uptime(), time.Now()
		if _, err := c.PauseWorkspace(ctx, w.WorkspaceID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if _, err := c.ResumeWorkspace(ctx, w.WorkspaceID); err != nil {
			t.Fatal(err)
		}
		up1, host := uptime(), time.Since(host0)
		if ran := up1 - up0; ran <= 0 || ran > host-5*time.Second {
			t.Errorf("guest uptime went on by %s over a pause of 5 s in %s of host time", ran, host)
		} else {
			t.Logf("guest uptime went on by %s over a pause of 5 s in %s of host time", ran, host)
		}
		if cs := strings.TrimSpace(exec("cat /sys/devices/system/clocksource/clocksource0/current_clocksource", nil)); cs != "tsc" {
			t.Errorf("guest clocksource after resume %q, want tsc", cs)
		}
		lt := &lineTimes{}
		exec("date +%s.%N; sleep 2; echo b", lt)
		if len(lt.lines) != 2 {
			t.Fatalf("output %q", lt.lines)
		}
		if lag := lt.at[0].Sub(guestTime(t, lt.lines[0])); lag < -5*time.Millisecond || lag > 100*time.Millisecond {
			t.Errorf("after resume: the guest's time reached the host %s later", lag)
		}
		if d := lt.at[1].Sub(lt.at[0]); d < 1900*time.Millisecond || d > 2100*time.Millisecond {
			t.Errorf("after resume: guest `sleep 2` took %s of host time", d)
		}
	})
}
