package shell

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRenderPlain(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"carriage return", "abc\rX", "Xbc"},
		{"backspace", "ab\bC", "aC"},
		{"colours", "\x1b[1;31mred\x1b[0m and \x1b[38;5;42mgreen\x1b[m\r\n$ ", "red and green\n$"},
		{"crlf lines", "one\r\ntwo\r\n\r\n\r\n", "one\ntwo"},
		{"erase line", "progress 10%\r\x1b[Kdone", "done"},
		{"tab", "a\tb", "a       b"},
		{"wide characters", "日本語 ok", "日本語 ok"},
		{"title and hyperlink", "\x1b]0;my title\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"vi alt screen", "$ vi f\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~\r\n\x1b[1;1Hhello", "hello\n~"},
		{"vi quit", "$ vi f\r\n\x1b[?1049h\x1b[H\x1b[2Jhello\x1b[?1049l$ ", "$ vi f\n$"},
		{"top-like screen", "\x1b[H\x1b[2Jtop - 10:00\r\nTasks: 3\r\n\r\n  PID USER\r\n    1 root\x1b[1;7H11:11\x1b[2;8H4\x1b[5;5H2", "top - 11:11\nTasks: 4\n\n  PID USER\n    2 root"},
		{"invalid utf-8", "a\xffb", "a\uFFFDb"},
		{"lone escape at end", "abc\x1b", "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := renderPlain([]byte(tc.in), 80, 24); got != tc.want {
				t.Fatalf("renderPlain(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRenderPlainKeepsScrolledLines(t *testing.T) {
	var in, want strings.Builder
	for i := range 30000 {
		fmt.Fprintf(&in, "line %d\r\n", i)
		if i > 0 {
			want.WriteByte('\n')
		}
		fmt.Fprintf(&want, "line %d", i)
	}
	in.WriteString("$ ")
	want.WriteString("\n$")
	got := renderPlain([]byte(in.String()), 80, 24)
	if got != want.String() {
		gl := strings.Split(got, "\n")
		t.Fatalf("got %d lines, first %q last %q", len(gl), gl[0], gl[len(gl)-1])
	}
}

func TestRenderPlainWrapsLongLines(t *testing.T) {
	got := renderPlain([]byte(strings.Repeat("x", 25)+"\r\n"), 10, 3)
	if got != "xxxxxxxxxx\nxxxxxxxxxx\nxxxxx" {
		t.Fatalf("%q", got)
	}
}

func TestRenderPlainManyLines(t *testing.T) {
	// Every line of a long scrollback is kept, in order.
	in := []byte(strings.Repeat("a\r\n", 20000))
	got := renderPlain(in, 80, 24)
	if n := strings.Count(got, "\n") + 1; n != 20000 || strings.Trim(got, "a\n") != "" {
		t.Fatalf("%d lines", n)
	}
}

// How fast a full MaxMaxChars read of short lines renders (the worst case
// of a --plain read); a timing goal, so a benchmark and not a test.
func BenchmarkRenderPlainFullRead(b *testing.B) {
	in := []byte(strings.Repeat("a\r\n", MaxMaxChars/3))
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		renderPlain(in, 80, 24)
	}
}

func TestRenderPlainGarbage(t *testing.T) {
	// Random bytes heavy in escape sequences neither panic nor hang.
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"\x1b[", "\x1b]", "\x1bP", "\x1b", "?", "1049", "h", "l", ";", "6n", "c", "\r", "\n", "\b", "J", "2", "K", "m", "38;5;", "é", "日", "\x07", "\x1b\\", "S", "T", "r", "L", "M", "@", "P", "X", "b", "999", "\xff"}
	for range 200 {
		var b strings.Builder
		for range r.IntN(200) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		_ = renderPlain([]byte(b.String()), 1+r.IntN(120), 1+r.IntN(50))
	}
}

func TestStripEscapes(t *testing.T) {
	in := "\x1b[1;31mred\x1b[0m\r\n\x1b]0;title\x07x\x1bPq#0\x1b\\y\x1b(Bz\t\xff"
	if got := stripEscapes([]byte(in)); got != "red\nxyz\t\uFFFD" {
		t.Fatalf("%q", got)
	}
}

func TestRenderPlainBudgetSplit(t *testing.T) {
	// On a 500x250 screen only the last 800 lines are replayed full size:
	// line by line output still reads exactly, blank lines included.
	var in, want strings.Builder
	for i := range 1000 {
		if i%3 == 0 {
			in.WriteString("\r\n")
			want.WriteString("\n")
		}
		fmt.Fprintf(&in, "\x1b[3%dmline\x1b[0m %d\r\n", i%8, i)
		fmt.Fprintf(&want, "line %d\n", i)
	}
	in.WriteString("$ ")
	want.WriteString("$")
	data := []byte(in.String())
	if budgetSplit(data, 500, 250) == 0 {
		t.Fatal("no split: the test does not test it")
	}
	if got := renderPlain(data, 500, 250); got != want.String() {
		t.Fatalf("got %q", got[:200])
	}
	// A full-screen program at the end still reads as its screen.
	data = append(data, "\x1b[?1049h\x1b[H\x1b[2Jtop - 12:00\r\nload"...)
	if got := renderPlain(data, 500, 250); got != "top - 12:00\nload" {
		t.Fatalf("got %q", got)
	}
}
