package shell

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/secrets"
)

const testSecret = "s3cr3t-TOKEN-value"

func redactingManager(delay time.Duration) *Manager {
	m := NewManager(Options{Redact: secrets.NewRedactor(testSecret)})
	if delay > 0 {
		m.flushDelay = delay
	}
	return m
}

// output is everything the shell kept, read raw from the start.
func output(t testing.TB, m *Manager, id string) string {
	t.Helper()
	return read(t, m, id, ReadRequest{MaxChars: MaxMaxChars}).Output
}

// noPieces fails when out shows a recognisable piece of the secret.
func noPieces(t testing.TB, what, out string) {
	t.Helper()
	for _, p := range []string{testSecret, "s3cr3t", "TOKEN", "value"} {
		if strings.Contains(out, p) {
			t.Fatalf("%s shows %q: %q", what, p, out)
		}
	}
}

func TestRedactWhole(t *testing.T) {
	m := redactingManager(time.Hour) // nothing may depend on a timed flush
	c, id := open(t, m)
	c.emit(t, "before "+testSecret+" after\n")
	want := "before " + secrets.Redacted + " after\n"
	waitBytes(t, m, id, int64(len(want)))
	if got := output(t, m, id); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

// A value split across two chunks is caught wherever it is cut: the first
// piece is held back until the second completes it.
func TestRedactSplitEveryPosition(t *testing.T) {
	m := redactingManager(time.Hour)
	want := "x " + secrets.Redacted + " y\n"
	for i := 1; i < len(testSecret); i++ {
		c, id := open(t, m)
		c.emit(t, "x "+testSecret[:i])
		c.emit(t, testSecret[i:]+" y\n")
		waitBytes(t, m, id, int64(len(want)))
		if got := output(t, m, id); got != want {
			t.Fatalf("cut at %d: output %q, want %q", i, got, want)
		}
		if _, err := m.Close(id); err != nil {
			t.Fatal(err)
		}
	}
}

// A pause longer than the flush delay within the first 8 bytes of a value
// is the documented limitation: the first piece is shown as it is once the
// delay passed, and the rest after it. A value written whole is still never
// shown.
func TestRedactSplitWithPause(t *testing.T) {
	m := redactingManager(0)
	c, id := open(t, m)
	start := time.Now()
	c.emit(t, "x "+testSecret[:6])
	waitBytes(t, m, id, int64(len("x "+testSecret[:6])))
	if el := time.Since(start); el < redactFlushDelay-10*time.Millisecond {
		t.Fatalf("held-back piece shown after %s, before the flush delay %s", el, redactFlushDelay)
	}
	if got := output(t, m, id); got != "x "+testSecret[:6] {
		t.Fatalf("after the flush: %q", got)
	}
	c.emit(t, testSecret[6:]+"\n")
	c.emit(t, "whole "+testSecret+"\n")
	want := "x " + testSecret + "\nwhole " + secrets.Redacted + "\n"
	waitBytes(t, m, id, int64(len(want)))
	if got := output(t, m, id); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

// A first piece of at least 8 bytes is most likely a value printed in two
// writes: a quiet flush keeps it held, so the value is redacted whole once
// the rest comes, however long the pause.
func TestRedactLongPieceHeldAcrossPause(t *testing.T) {
	m := redactingManager(20 * time.Millisecond)
	c, id := open(t, m)
	c.emit(t, "x "+testSecret[:10])
	waitBytes(t, m, id, int64(len("x ")))
	time.Sleep(200 * time.Millisecond) // ten flush delays
	if got := output(t, m, id); got != "x " {
		t.Fatalf("after the pause: %q", got)
	}
	c.emit(t, testSecret[10:]+"\n")
	want := "x " + secrets.Redacted + "\n"
	waitBytes(t, m, id, int64(len(want)))
	if got := output(t, m, id); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

// Output that merely begins like a value (here a prompt ending in "s3") is
// held back, then shown as it is after the flush delay.
func TestRedactLookalikeTailFlushed(t *testing.T) {
	m := redactingManager(0)
	c, id := open(t, m)
	start := time.Now()
	c.emit(t, "ls\nuser@host:~/s3")
	waitBytes(t, m, id, int64(len("ls\nuser@host:~/")))
	got := output(t, m, id)
	if el := time.Since(start); el < redactFlushDelay && got != "ls\nuser@host:~/" {
		t.Fatalf("before the flush (%s): %q", el, got)
	}
	waitBytes(t, m, id, int64(len("ls\nuser@host:~/s3")))
	if el := time.Since(start); el < redactFlushDelay-10*time.Millisecond {
		t.Fatalf("tail shown after %s, before the flush delay %s", el, redactFlushDelay)
	}
	if got := output(t, m, id); got != "ls\nuser@host:~/s3" {
		t.Fatalf("after the flush: %q", got)
	}
	// A new chunk supersedes a pending flush: the tail completes a value.
	c.emit(t, "\n$ cat tok\n"+testSecret[:3])
	c.emit(t, testSecret[3:])
	want := "ls\nuser@host:~/s3\n$ cat tok\n" + secrets.Redacted
	waitBytes(t, m, id, int64(len(want)))
	if got := output(t, m, id); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

// A read that waits for idle output returns the held-back tail too, even
// when the idle time is shorter than the flush delay.
func TestRedactWaitForIdleSeesFlush(t *testing.T) {
	m := redactingManager(0)
	c, id := open(t, m)
	c.emit(t, "user@host:~$ s")
	waitBytes(t, m, id, int64(len("user@host:~$ ")))
	res := read(t, m, id, ReadRequest{WaitForIdle: 50 * time.Millisecond})
	if res.Output != "user@host:~$ s" {
		t.Fatalf("wait-for-idle read %q", res.Output)
	}
}

// Plain reads, and raw reads from every cursor with small max_chars, only
// ever see the redacted output.
func TestRedactEveryRead(t *testing.T) {
	m := redactingManager(time.Hour)
	c, id := open(t, m)
	c.emit(t, "\x1b[31mkey="+testSecret[:5])
	c.emit(t, testSecret[5:]+"\x1b[0m\r\nnext "+testSecret+"\r\n")
	want := "\x1b[31mkey=" + secrets.Redacted + "\x1b[0m\r\nnext " + secrets.Redacted + "\r\n"
	waitBytes(t, m, id, int64(len(want)))
	plain := read(t, m, id, ReadRequest{Plain: true}).Output
	if !strings.Contains(plain, "key="+secrets.Redacted) || !strings.Contains(plain, "next "+secrets.Redacted) {
		t.Fatalf("plain read %q", plain)
	}
	noPieces(t, "plain read", plain)
	for cur := int64(0); cur <= int64(len(want)); cur++ {
		for _, mc := range []int{1, 3, 7, 40} {
			for _, p := range []bool{false, true} {
				out := read(t, m, id, ReadRequest{Cursor: cur, MaxChars: mc, Plain: p}).Output
				noPieces(t, "read", out)
			}
		}
	}
}

// The held-back tail is shown when the program exits or the shell is
// closed, without waiting for the flush delay.
func TestRedactFlushAtEnd(t *testing.T) {
	m := redactingManager(time.Hour)
	c, id := open(t, m)
	c.emit(t, "bye s3")
	c.exit(0, "")
	waitState(t, m, id, StateExited)
	if got := output(t, m, id); got != "bye s3" {
		t.Fatalf("exited: %q", got)
	}

	c, id = open(t, m)
	c.emit(t, "hang s3cr")
	waitBytes(t, m, id, int64(len("hang ")))
	if _, err := m.Close(id); err != nil {
		t.Fatal(err)
	}
	if got := output(t, m, id); got != "hang s3cr" {
		t.Fatalf("closed: %q", got)
	}
}

func TestNoRedactPassesBytes(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	in := "tok " + testSecret + " s3"
	c.emit(t, in)
	waitBytes(t, m, id, int64(len(in)))
	if got := output(t, m, id); got != in {
		t.Fatalf("output %q, want %q", got, in)
	}
}

// Output, timed flushes and waiting readers at once, for the race detector
// (pauses between the pieces let some flushes happen first: what is shown
// then is the documented limitation, not checked here).
func TestRedactConcurrent(t *testing.T) {
	m := redactingManager(time.Millisecond)
	c, id := open(t, m)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Go(func() {
			var cur int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := m.Read(context.Background(), id, ReadRequest{Cursor: cur, Plain: r%2 == 0, MaxChars: 50, WaitForIdle: time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				cur = res.NextCursor
			}
		})
	}
	for i := range 200 {
		cut := 1 + i%(len(testSecret)-1)
		c.emit(t, "line "+testSecret[:cut])
		if i%7 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		c.emit(t, testSecret[cut:]+"\n")
	}
	c.exit(0, "")
	waitState(t, m, id, StateExited)
	close(stop)
	wg.Wait()
}

// A value split by escape sequences (grep --color) passes the byte stream,
// but a plain read renders it whole and redacts it there.
func TestRedactPlainAfterRender(t *testing.T) {
	m := redactingManager(time.Hour)
	c, id := open(t, m)
	c.emit(t, "key: \x1b[01;31m"+testSecret[:6]+"\x1b[m"+testSecret[6:]+"\r\n")
	c.exit(0, "")
	waitState(t, m, id, StateExited)
	out := read(t, m, id, ReadRequest{Plain: true, MaxChars: MaxMaxChars}).Output
	if !strings.Contains(out, "key: "+secrets.Redacted) {
		t.Fatalf("plain read %q", out)
	}
	noPieces(t, "plain read", out)
}
