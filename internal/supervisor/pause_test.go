package supervisor

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// The call tracker behind pause and idle pause: calls count as activity
// while in flight, and once a pause begins new calls are refused with
// workspace_pausing (they never run) while the pause itself gets through.
func TestPauserTracksCalls(t *testing.T) {
	p := newPauser(1)
	s := &server{}
	release := make(chan struct{})
	var ran atomic.Int32
	h := p.track(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		if r.URL.Path == "/v1/slow" {
			<-release
		}
	}), s)
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/slow", nil))
		close(done)
	}()
	for idle, _ := p.idleFor(time.Now()); idle != 0; idle, _ = p.idleFor(time.Now()) {
		time.Sleep(time.Millisecond) // until the slow call is in flight
	}
	if idle, limit := p.idleFor(time.Now().Add(time.Hour)); idle != 0 || limit != time.Second {
		t.Fatalf("a call in flight is not idle: %v %v", idle, limit)
	}
	if !p.begin() || p.begin() {
		t.Fatal("begin: the first pause begins, a second does not")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/exec", nil))
	if rec.Code != http.StatusInternalServerError || ran.Load() != 1 {
		t.Fatalf("a call during a pause: %d, ran %d", rec.Code, ran.Load())
	}
	var we struct{ Error WireError }
	if err := json.Unmarshal(rec.Body.Bytes(), &we); err != nil || we.Error.Code != CodePausing || errdefs.ClassByName(we.Error.Class) != errdefs.ErrUnavailable {
		t.Fatalf("refusal: %v %+v", err, we)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/pause", nil))
	if ran.Load() != 2 {
		t.Fatal("the pause call itself was refused")
	}
	start := time.Now()
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	p.drain(5 * time.Second)
	if d := time.Since(start); d < 40*time.Millisecond || d > 4*time.Second {
		t.Fatalf("drain returned after %v, not when the call ended", d)
	}
	<-done
	if idle, _ := p.idleFor(time.Now().Add(time.Minute)); idle < 59*time.Second {
		t.Fatalf("idle after the call: %v", idle)
	}
}

// Looking at a workspace (status, the command list) does not keep it
// awake; reading a command's output does.
func TestPauserObservations(t *testing.T) {
	p := newPauser(60)
	h := p.track(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), &server{})
	long := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		method, path string
		awake        bool
	}{
		{"GET", "/v1/status", false},
		{"GET", "/v1/commands", false},
		{"GET", "/v1/commands/c1/logs", true},
		{"POST", "/v1/exec", true},
	} {
		p.mu.Lock()
		p.last = long
		p.mu.Unlock()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, c.path, nil))
		idle, _ := p.idleFor(time.Now())
		if awake := idle < time.Minute; awake != c.awake {
			t.Errorf("%s %s: idle %v after the call, want awake=%v", c.method, c.path, idle, c.awake)
		}
	}
}
