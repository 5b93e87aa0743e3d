package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pyrovm/pyro/internal/errdefs"
)

const R = Redacted

func TestNilRedactor(t *testing.T) {
	var r *Redactor
	const s = "SUPERSECRET99 stays as it is"
	if got := r.String(s); got != s {
		t.Errorf("String = %q", got)
	}
	b := []byte(s)
	if got := r.Bytes(b); &got[0] != &b[0] || string(got) != s {
		t.Errorf("Bytes = %q (copied: %v)", got, &got[0] != &b[0])
	}
	if got := r.Bytes(nil); got != nil {
		t.Errorf("Bytes(nil) = %q", got)
	}
	for _, head := range []bool{false, true} {
		for _, tail := range []bool{false, true} {
			if got := r.Clipped("RET99 x SUPERSE", head, tail); got != "RET99 x SUPERSE" {
				t.Errorf("Clipped(%v, %v) = %q", head, tail, got)
			}
		}
	}
	err := errors.New("SUPERSECRET99 failed")
	if got := r.Error(err); got != err {
		t.Errorf("Error returned %v (%p), want the same error %p", got, got, err)
	}
	if got := r.Error(nil); got != nil {
		t.Errorf("Error(nil) = %v", got)
	}
	src := strings.NewReader(s)
	if got := r.Reader(src); got != io.Reader(src) {
		t.Errorf("Reader wrapped the source: %T", got)
	}
	st := r.NewStream()
	if got := st.Push([]byte("x SUPERSE")); string(got) != "x SUPERSE" {
		t.Errorf("Push = %q", got)
	}
	if st.Pending() {
		t.Error("nil stream holds bytes back")
	}
	if got := st.Flush(); got != nil {
		t.Errorf("Flush = %q", got)
	}
	var zero Stream
	if got := zero.Push([]byte("abc")); string(got) != "abc" || zero.Pending() || zero.Flush() != nil {
		t.Errorf("zero Stream: Push = %q", got)
	}
}

func TestNewRedactorNothingToHide(t *testing.T) {
	for _, vals := range [][]string{nil, {}, {""}, {"a"}, {"abc"}, {"   "}, {"ab", "x\ny"}} {
		if r := NewRedactor(vals...); r != nil {
			t.Errorf("NewRedactor(%q) = %+v, want nil", vals, r)
		}
	}
}

func TestShortValuesIgnored(t *testing.T) {
	r := NewRedactor("abc", "xyz9", " ab ")
	if r == nil {
		t.Fatal("nil redactor")
	}
	// "abc" is shorter than MinValueBytes: not hidden. " ab " is 4 bytes
	// with its spaces (hidden as is), but "ab" alone is not.
	got := r.String("abc xyz9 abcabc ab x ab y")
	want := "abc " + R + " abcabc" + R + "x" + R + "y"
	if got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestRedactString(t *testing.T) {
	r := NewRedactor("SUPERSECRET99", "p4ssw0rd")
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"nothing to see", "nothing to see"},
		{"SUPERSECRET99", R},
		{"SUPERSECRET99 at the start", R + " at the start"},
		{"at the end SUPERSECRET99", "at the end " + R},
		{"twice SUPERSECRET99 and SUPERSECRET99.", "twice " + R + " and " + R + "."},
		{"SUPERSECRET99SUPERSECRET99", R + R},
		{"SUPERSECRET99p4ssw0rdSUPERSECRET99", R + R + R},
		{"a=SUPERSECRET99\nb=p4ssw0rd\n", "a=" + R + "\nb=" + R + "\n"},
		{"SUPERSECRET9", "SUPERSECRET9"},
		{"SUPERSECRET999", R + "9"},
		{"SSUPERSECRET99", "S" + R},
		{"SUPERSUPERSECRET99", "SUPER" + R},
		{"p4ssw0r", "p4ssw0r"},
		{"P4SSW0RD", "P4SSW0RD"},
		{"日本語 p4ssw0rd 日本語", "日本語 " + R + " 日本語"},
		{"\x00\xffp4ssw0rd\xfe", "\x00\xff" + R + "\xfe"},
	} {
		if got := r.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := r.Bytes([]byte(tc.in)); string(got) != tc.want {
			t.Errorf("Bytes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBytesDoesNotModifyInput(t *testing.T) {
	r := NewRedactor("p4ssw0rd")
	in := []byte("x p4ssw0rd y")
	got := r.Bytes(in)
	if string(in) != "x p4ssw0rd y" {
		t.Errorf("Bytes changed its input to %q", in)
	}
	if string(got) != "x "+R+" y" {
		t.Errorf("Bytes = %q", got)
	}
}

func TestOverlappingPrefix(t *testing.T) {
	// Order of the values must not matter.
	for _, r := range []*Redactor{
		NewRedactor("abcd1234", "abcd1234XYZW"),
		NewRedactor("abcd1234XYZW", "abcd1234"),
	} {
		for _, tc := range []struct{ in, want string }{
			{"abcd1234XYZW", R},
			{"abcd1234", R},
			{"[abcd1234XYZW]", "[" + R + "]"},
			{"abcd1234 abcd1234XYZW abcd1234", R + " " + R + " " + R},
			{"abcd1234abcd1234XYZW", R + R},
			{"abcd1234XYZWabcd1234", R + R},
		} {
			got := r.String(tc.in)
			if got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if strings.Contains(got, "XYZW") {
				t.Errorf("String(%q) = %q leaves a part of the longer value", tc.in, got)
			}
		}
	}
}

func TestOverlappingValues(t *testing.T) {
	// Two values where the end of one is the start of the other, or where
	// one starts inside the other: the union is hidden, no piece stays.
	for _, tc := range []struct {
		vals    []string
		in      string
		want    string
		visible []string
	}{
		{[]string{"1234abcd", "abcdXYZW5678"}, "<1234abcdXYZW5678>", "<" + R + ">", []string{"XYZW", "5678"}},
		{[]string{"abcd1234", "cd1234XYZW"}, "<abcd1234XYZW>", "<" + R + ">", []string{"XYZW"}},
		{[]string{"AAAABBBB", "BBBBCCCC", "CCCCDDDD"}, "AAAABBBBCCCCDDDD!", R + "!", []string{"CC", "DD"}},
		// Adjacent (not overlapping) values stay separate.
		{[]string{"1234abcd", "XYZW5678"}, "1234abcdXYZW5678", R + R, nil},
		// A value wholly inside another.
		{[]string{"outer-INNER-value", "INNER-v"}, "outer-INNER-value INNER-v", R + " " + R, nil},
		// A value repeating with itself.
		{[]string{"abab"}, "ababab", R, []string{"ab"}},
		{[]string{"aaaa"}, "aaaaaaaaaa b aaaa", R + " b " + R, []string{"a"}},
	} {
		r := NewRedactor(tc.vals...)
		got := r.String(tc.in)
		if got != tc.want {
			t.Errorf("%q: String(%q) = %q, want %q", tc.vals, tc.in, got, tc.want)
		}
		for _, v := range tc.visible {
			if strings.Contains(got, v) {
				t.Errorf("%q: String(%q) = %q shows %q", tc.vals, tc.in, got, v)
			}
		}
		checkStreamSplits(t, r, tc.in)
	}
}

func TestWhitespaceAroundValue(t *testing.T) {
	// A value read from a file, with its trailing newline.
	r := NewRedactor("tok3n-value\n")
	for _, tc := range []struct{ in, want string }{
		{"tok3n-value", R},
		{"echo tok3n-value", "echo " + R},
		{"TOKEN=tok3n-value; next", "TOKEN=" + R + "; next"},
		{"tok3n-value\n", R + "\n"},
		{"cat: tok3n-value\ndone\n", "cat: " + R + "\ndone\n"},
		{"tok3n-value\r\n", R + "\r\n"},
		{"tok3n-valu", "tok3n-valu"},
	} {
		if got := r.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	r = NewRedactor("\t  spaced-value \n")
	if got := r.String("[spaced-value]"); got != "["+R+"]" {
		t.Errorf("String = %q", got)
	}
	if got := r.String("x\t  spaced-value \ny"); got != "x\t  "+R+" \ny" {
		t.Errorf("String = %q", got)
	}
	// Too short once trimmed: the value is hidden with its white space.
	r = NewRedactor(" ab \n")
	if got := r.String("[ ab \n] ab"); got != "["+R+"] ab" {
		t.Errorf("String = %q", got)
	}
	// No newline in the value: white space alone is trimmed.
	r = NewRedactor("  padded-secret  ")
	if got := r.String("[padded-secret]"); got != "["+R+"]" {
		t.Errorf("String = %q", got)
	}
	// A one-line value shorter than a line pattern, with its newline: the
	// trimmed value is still hidden.
	r = NewRedactor("abc1234\n")
	if got := r.String("v=abc1234;"); got != "v="+R+";" {
		t.Errorf("String = %q", got)
	}
}

const pemValue = "-----BEGIN TEST KEY-----\n" +
	"MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf\n" +
	"9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+\n" +
	"short\n" +
	"abc1234\n" +
	"abcd1234\n" +
	"-----END TEST KEY-----\n"

func TestMultiLineValue(t *testing.T) {
	r := NewRedactor(pemValue)
	if got := r.String("key:\n" + pemValue + "done"); got != "key:\n"+R+"\ndone" {
		t.Errorf("whole value: %q", got)
	}
	// `head -2 key.pem`
	lines := strings.SplitAfter(pemValue, "\n")
	head2 := lines[0] + lines[1]
	if got := r.String(head2); got != R+"\n"+R+"\n" {
		t.Errorf("head -2: %q", got)
	}
	// Each long line alone, in any context, also with CRLF line ends.
	for _, line := range []string{
		"-----BEGIN TEST KEY-----",
		"MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf",
		"9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+",
		"abcd1234",
		"-----END TEST KEY-----",
	} {
		if got := r.String("> " + line + "\r\n"); got != "> "+R+"\r\n" {
			t.Errorf("line %q alone: %q", line, got)
		}
	}
	// Short lines are not patterns on their own.
	for _, line := range []string{"short", "abc1234"} {
		in := "x " + line + " y"
		if got := r.String(in); got != in {
			t.Errorf("short line %q: String(%q) = %q", line, in, got)
		}
	}
	// The value with CRLF line ends (a terminal's output) leaves only
	// line ends and short lines.
	crlf := strings.ReplaceAll(pemValue, "\n", "\r\n")
	want := R + "\r\n" + R + "\r\n" + R + "\r\nshort\r\nabc1234\r\n" + R + "\r\n" + R + "\r\n"
	if got := r.String(crlf); got != want {
		t.Errorf("CRLF: %q, want %q", got, want)
	}
}

func TestMultiLineValueWithCR(t *testing.T) {
	r := NewRedactor("first-line-long\r\nsecond-line-long\r\n")
	if got := r.String("second-line-long"); got != R {
		t.Errorf("String = %q", got)
	}
}

func TestClipped(t *testing.T) {
	r := NewRedactor("SUPERSECRET99")
	for _, tc := range []struct {
		in         string
		head, tail bool
		want       string
	}{
		{"", true, true, ""},
		{"RET99 and more", true, false, R + " and more"},
		{"RET99 and more", false, false, "RET99 and more"},
		{"RET99 and more", false, true, "RET99 and more"},
		{"9 and more", true, false, R + " and more"},
		{"ERSECRET99", true, false, R},
		{"SUPERSECRET99 x", true, false, R + " x"},
		{"and more SUPERSE", false, true, "and more " + R},
		{"and more SUPERSE", false, false, "and more SUPERSE"},
		{"and more SUPERSE", true, false, "and more SUPERSE"},
		{"and more S", false, true, "and more " + R},
		{"and more SUPERSECRET99", false, true, "and more " + R},
		{"SUPERSECRET9", false, true, R},
		{"RET99 x SUPERSECRET99 y SUPER", true, true, R + " x " + R + " y " + R},
		{"RET99 x SUPERSECRET99 y SUPER", false, false, "RET99 x " + R + " y SUPER"},
		{"plain text", true, true, "plain text"},
		{"SUPERMAN", false, true, "SUPERMAN"},
		// The whole piece inside a value.
		{"PERSECRE", true, true, R},
		{"PERSECRE", true, false, "PERSECRE"},
		{"PERSECRE", false, true, "PERSECRE"},
	} {
		if got := r.Clipped(tc.in, tc.head, tc.tail); got != tc.want {
			t.Errorf("Clipped(%q, head=%v, tail=%v) = %q, want %q", tc.in, tc.head, tc.tail, got, tc.want)
		}
	}
}

func TestClippedEveryCut(t *testing.T) {
	const secret = "SUPERSECRET99"
	r := NewRedactor(secret, "other-value")
	text := "log: " + secret + " then other-value; end " + secret + "\n"
	for i := 0; i <= len(text); i++ {
		for j := i; j <= len(text); j++ {
			got := r.Clipped(text[i:j], i > 0, j < len(text))
			// No piece of a value of 4 bytes or more (bar "[REDACTED]") is left.
			rest := strings.ReplaceAll(got, R, "\x00")
			for _, v := range []string{secret, "other-value"} {
				for k := 0; k+4 <= len(v); k++ {
					if strings.Contains(rest, v[k:k+4]) {
						t.Fatalf("Clipped(%q) = %q shows %q", text[i:j], got, v[k:k+4])
					}
				}
			}
		}
	}
}

func TestClippedHeadOverlap(t *testing.T) {
	// The piece starts with the end of one value, which is also the start of
	// another value: both are hidden.
	r := NewRedactor("XXXXabcd", "abcdEFGH")
	if got := r.Clipped("abcdEFGH rest", true, false); got != R+" rest" {
		t.Errorf("Clipped = %q", got)
	}
}

func TestStreamEverySplit(t *testing.T) {
	r := NewRedactor("SUPERSECRET99", "abcd1234", "abcd1234XYZW", pemValue)
	for _, text := range []string{
		"SUPERSECRET99",
		"x SUPERSECRET99 y",
		"SUPERSECRET99SUPERSECRET99",
		"SUPERSUPERSECRET99 SUPERSECRET9",
		"abcd1234XYZW abcd1234XY abcd1234",
		"key=" + pemValue + "!",
		"SUPER",
	} {
		checkStreamSplits(t, r, text)
	}
}

// checkStreamSplits pushes text in two and in three pieces at every cut and
// compares with String.
func checkStreamSplits(t *testing.T, r *Redactor, text string) {
	t.Helper()
	want := r.String(text)
	for i := 0; i <= len(text); i++ {
		s := r.NewStream()
		var out []byte
		out = append(out, s.Push([]byte(text[:i]))...)
		out = append(out, s.Push([]byte(text[i:]))...)
		out = append(out, s.Flush()...)
		if string(out) != want {
			t.Fatalf("split at %d of %q: %q, want %q", i, text, out, want)
		}
		if s.Pending() {
			t.Fatalf("split at %d of %q: pending after Flush", i, text)
		}
	}
	if len(text) > 200 {
		return
	}
	for i := 0; i <= len(text); i++ {
		for j := i; j <= len(text); j++ {
			s := r.NewStream()
			var out []byte
			for _, p := range []string{text[:i], text[i:j], text[j:]} {
				out = append(out, s.Push([]byte(p))...)
			}
			out = append(out, s.Flush()...)
			if string(out) != want {
				t.Fatalf("split at %d, %d of %q: %q, want %q", i, j, text, out, want)
			}
		}
	}
}

func TestStreamSecretNeverVisible(t *testing.T) {
	const secret = "SUPERSECRET99"
	r := NewRedactor(secret)
	text := "before " + secret + " after"
	for i := 0; i <= len(text); i++ {
		s := r.NewStream()
		a := s.Push([]byte(text[:i]))
		b := s.Push([]byte(text[i:]))
		c := s.Flush()
		all := string(a) + string(b) + string(c)
		if strings.Contains(all, secret) || strings.Contains(all, "SECRET") {
			t.Fatalf("split at %d: %q", i, all)
		}
		if all != "before "+R+" after" {
			t.Fatalf("split at %d: %q", i, all)
		}
		// A piece never shows a part of the value of 4 bytes or more.
		for _, p := range [][]byte{a, b, c} {
			q := strings.ReplaceAll(string(p), R, "")
			for k := 0; k+4 <= len(secret); k++ {
				if strings.Contains(q, secret[k:k+4]) {
					t.Fatalf("split at %d: piece %q shows %q", i, p, secret[k:k+4])
				}
			}
		}
	}
}

func TestStreamPendingAndFlush(t *testing.T) {
	r := NewRedactor("SUPERSECRET99")
	s := r.NewStream()
	if s.Pending() {
		t.Fatal("new stream pending")
	}
	if got := s.Push([]byte("hello SUPER")); string(got) != "hello " {
		t.Errorf("Push = %q, want %q", got, "hello ")
	}
	if !s.Pending() {
		t.Error("a possible start of a value is not held back")
	}
	if got := s.Flush(); string(got) != "SUPER" {
		t.Errorf("Flush = %q, want %q", got, "SUPER")
	}
	if s.Pending() {
		t.Error("pending after Flush")
	}
	if got := s.Flush(); len(got) != 0 {
		t.Errorf("second Flush = %q", got)
	}

	// The held part diverges from the value: emitted as is.
	if got := s.Push([]byte("x SUPERS")); string(got) != "x " {
		t.Errorf("Push = %q", got)
	}
	if got := s.Push([]byte("TAR")); string(got) != "SUPERSTAR" || s.Pending() {
		t.Errorf("Push = %q (pending %v), want %q", got, s.Pending(), "SUPERSTAR")
	}
	// The held part is completed: replaced.
	s.Push([]byte("SUPERSEC"))
	if got := s.Push([]byte("RET99!")); string(got) != R+"!" || s.Pending() {
		t.Errorf("Push = %q (pending %v)", got, s.Pending())
	}
	// Nothing that could start a value: nothing held.
	if got := s.Push([]byte("plain text\n")); string(got) != "plain text\n" || s.Pending() {
		t.Errorf("Push = %q (pending %v)", got, s.Pending())
	}
	// Empty pushes change nothing.
	if got := s.Push(nil); len(got) != 0 || s.Pending() {
		t.Errorf("Push(nil) = %q", got)
	}
	s.Push([]byte("SUP"))
	if got := s.Push(nil); len(got) != 0 || !s.Pending() {
		t.Errorf("Push(nil) with pending = %q, pending %v", got, s.Pending())
	}
	if got := s.Flush(); string(got) != "SUP" {
		t.Errorf("Flush = %q", got)
	}
}

func TestStreamHoldsLittle(t *testing.T) {
	// What a stream holds back is at most one value long, whatever it is fed.
	r := NewRedactor("aaaa", "SUPERSECRET99")
	s := r.NewStream()
	total := 0
	for range 1000 {
		total += len(s.Push([]byte("aaaaaaa")))
		if n := len(s.pending); n >= len("SUPERSECRET99") {
			t.Fatalf("stream holds %d bytes", n)
		}
	}
	total += len(s.Flush())
	if total != len(R) {
		t.Errorf("one run of a's gave %d bytes, want one %q", total, R)
	}
}

func TestStreamAfterFlushInsideMatch(t *testing.T) {
	// The held tail lies in a match already shown as [REDACTED]: Flush
	// gives nothing more, and the stream then starts afresh.
	r := NewRedactor("aaaa")
	s := r.NewStream()
	if got := s.Push([]byte("aaaaaa")); string(got) != R || !s.Pending() {
		t.Fatalf("Push = %q, pending %v", got, s.Pending())
	}
	if got := s.Flush(); len(got) != 0 {
		t.Errorf("Flush = %q, want nothing", got)
	}
	if got := string(s.Push([]byte("plain!"))) + string(s.Flush()); got != "plain!" {
		t.Errorf("after Flush: %q, want %q", got, "plain!")
	}
}

func TestClippedTailInsideMatch(t *testing.T) {
	r := NewRedactor("aaaa")
	for _, tc := range []struct{ in, want string }{
		{"x aaaaaa", "x " + R},
		{"x aaaaaa b aa", "x " + R + " b " + R},
		{"x aaaaaa b a", "x " + R + " b " + R},
	} {
		if got := r.Clipped(tc.in, false, true); got != tc.want {
			t.Errorf("Clipped(%q, tail) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStreamDoesNotKeepCallerBuffer(t *testing.T) {
	r := NewRedactor("SUPERSECRET99")
	s := r.NewStream()
	buf := []byte("x SUPERSE")
	s.Push(buf)
	copy(buf, "zzzzzzzzz")
	if got := string(s.Push([]byte("CRET99"))) + string(s.Flush()); got != R {
		t.Errorf("stream output %q after the caller reused its buffer", got)
	}
}

func TestStreamRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []string{"SUPERSECRET99", "abab1234", "1234cdcd", "abab1234XYZW", "xyzw", "ssss", pemValue}
	r := NewRedactor(vals...)
	alphabet := "ab12cdXYZWxyzwsS34 \n-ERCUP9"
	for iter := range 300 {
		var sb strings.Builder
		for sb.Len() < 2000 {
			if rng.IntN(6) == 0 {
				sb.WriteString(vals[rng.IntN(len(vals))])
			} else {
				for range rng.IntN(20) {
					sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
				}
			}
		}
		text := sb.String()
		want := r.String(text)
		for _, v := range vals {
			if strings.Contains(want, strings.TrimSpace(v)) {
				t.Fatalf("iteration %d: String shows %q", iter, v)
			}
		}
		s := r.NewStream()
		var out []byte
		for rest := text; len(rest) > 0; {
			n := min(len(rest), rng.IntN(40))
			out = append(out, s.Push([]byte(rest[:n]))...)
			rest = rest[n:]
		}
		out = append(out, s.Flush()...)
		if string(out) != want {
			t.Fatalf("iteration %d: stream output differs from String\nstream: %q\nstring: %q", iter, out, want)
		}
		// A Reader that sees the same text gives the same result.
		got, err := io.ReadAll(r.Reader(iotest.HalfReader(strings.NewReader(text))))
		if err != nil || string(got) != want {
			t.Fatalf("iteration %d: Reader output differs (%v)", iter, err)
		}
	}
}

func TestReader(t *testing.T) {
	const secret = "SUPERSECRET99"
	r := NewRedactor(secret)
	text := strings.Repeat("line with "+secret+" in it\n", 50) + "SUPERSEC"
	want := r.String(text)
	if strings.Contains(want, secret) {
		t.Fatal("String shows the value")
	}
	for name, src := range map[string]func() io.Reader{
		"OneByteReader": func() io.Reader { return iotest.OneByteReader(strings.NewReader(text)) },
		"DataErrReader": func() io.Reader { return iotest.DataErrReader(strings.NewReader(text)) },
		"HalfReader":    func() io.Reader { return iotest.HalfReader(strings.NewReader(text)) },
		"plain":         func() io.Reader { return strings.NewReader(text) },
	} {
		var buf bytes.Buffer
		n, err := io.Copy(&buf, r.Reader(src()))
		if err != nil {
			t.Errorf("%s: io.Copy: %v", name, err)
		}
		if buf.String() != want || n != int64(len(want)) {
			t.Errorf("%s: io.Copy gave %d bytes %q, want %q", name, n, buf.String(), want)
		}
		// Small reads by the caller.
		if err := iotest.TestReader(r.Reader(src()), []byte(want)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Large input, more than the reader's buffer, secrets across its edges.
	big := strings.Repeat("0123456789abcdef "+secret+" ", 5000)
	got, err := io.ReadAll(r.Reader(strings.NewReader(big)))
	if err != nil || string(got) != r.String(big) {
		t.Errorf("large input: %v", err)
	}
	// Empty input.
	got, err = io.ReadAll(r.Reader(strings.NewReader("")))
	if err != nil || len(got) != 0 {
		t.Errorf("empty input: %q, %v", got, err)
	}
}

func TestReaderError(t *testing.T) {
	r := NewRedactor("SUPERSECRET99")
	boom := errors.New("boom")
	_, err := io.Copy(io.Discard, r.Reader(iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Errorf("io.Copy error = %v, want %v", err, boom)
	}
	// Data read before the error is delivered (redacted) before the error.
	src := io.MultiReader(strings.NewReader("data SUPERSECRET99 tail SUPERSE"), iotest.ErrReader(boom))
	var buf bytes.Buffer
	_, err = io.Copy(&buf, r.Reader(src))
	if !errors.Is(err, boom) {
		t.Errorf("io.Copy error = %v, want %v", err, boom)
	}
	if want := "data " + R + " tail SUPERSE"; buf.String() != want {
		t.Errorf("io.Copy gave %q before the error, want %q", buf.String(), want)
	}
	// The error sticks.
	rd := r.Reader(iotest.ErrReader(boom))
	for range 2 {
		if n, err := rd.Read(make([]byte, 10)); n != 0 || !errors.Is(err, boom) {
			t.Errorf("Read = %d, %v", n, err)
		}
	}
}

func TestError(t *testing.T) {
	const secret = "SUPERSECRET99"
	r := NewRedactor(secret)

	t.Run("typed", func(t *testing.T) {
		orig := errdefs.New(errdefs.ErrNotFound, "thing_missing", "no file /home/%s/x: check the path", secret)
		err := r.Error(orig)
		if got, want := err.Error(), "no file /home/"+R+"/x: check the path"; got != want {
			t.Errorf("message %q, want %q", got, want)
		}
		if errdefs.CodeOf(err) != "thing_missing" {
			t.Errorf("code %q", errdefs.CodeOf(err))
		}
		if !errors.Is(err, errdefs.ErrNotFound) || !errdefs.IsNotFound(err) {
			t.Error("class lost")
		}
		var e *errdefs.Error
		if !errors.As(err, &e) || e.Class != errdefs.ErrNotFound || e.Code != "thing_missing" || strings.Contains(e.Message, secret) {
			t.Errorf("errors.As gave %+v", e)
		}
		for _, s := range []string{fmt.Sprint(err), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%s", err)} {
			if strings.Contains(s, secret) {
				t.Errorf("formatted error shows the value: %q", s)
			}
		}
		if orig.Message != "no file /home/"+secret+"/x: check the path" {
			t.Errorf("the original error was changed: %q", orig.Message)
		}
	})

	t.Run("typed with cause only", func(t *testing.T) {
		orig := &errdefs.Error{Code: "c", Class: errdefs.ErrUnavailable, Cause: errors.New("dial " + secret)}
		err := r.Error(orig)
		if err.Error() != "dial "+R || errdefs.CodeOf(err) != "c" || !errdefs.IsUnavailable(err) {
			t.Errorf("got %q code %q", err, errdefs.CodeOf(err))
		}
	})

	t.Run("typed wrapped", func(t *testing.T) {
		inner := errdefs.Wrap(errors.New("token "+secret+" refused"), errdefs.ErrFailedPrecondition, "auth_failed", "login failed")
		err := r.Error(fmt.Errorf("workspace %s: %w", secret, inner))
		if strings.Contains(err.Error(), secret) {
			t.Errorf("message %q shows the value", err)
		}
		if want := "workspace " + R + ": login failed: token " + R + " refused"; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
		if errdefs.CodeOf(err) != "auth_failed" || !errdefs.IsFailedPrecondition(err) {
			t.Errorf("code %q", errdefs.CodeOf(err))
		}
	})

	t.Run("plain wrapping context.Canceled", func(t *testing.T) {
		orig := fmt.Errorf("running %q: %w", "echo "+secret, context.Canceled)
		err := r.Error(orig)
		if !errors.Is(err, context.Canceled) {
			t.Error("errors.Is(err, context.Canceled) is false")
		}
		if errdefs.CodeOf(err) != errdefs.CodeCanceled {
			t.Errorf("code %q", errdefs.CodeOf(err))
		}
		if want := `running "echo ` + R + `": context canceled`; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		err := r.Error(fmt.Errorf("%s: %w", secret, context.DeadlineExceeded))
		if !errdefs.IsDeadlineExceeded(err) || strings.Contains(err.Error(), secret) {
			t.Errorf("got %v", err)
		}
	})

	t.Run("no secret", func(t *testing.T) {
		plain := fmt.Errorf("nothing here: %w", context.Canceled)
		if got := r.Error(plain); got != plain {
			t.Errorf("Error returned %p, want the same error %p", got, plain)
		}
		typed := errdefs.New(errdefs.ErrInternal, "x", "SUPERSECRET9 is not the value")
		if got := r.Error(typed); got != error(typed) {
			t.Errorf("Error returned %p, want the same error %p", got, typed)
		}
		if r.Error(nil) != nil {
			t.Error("Error(nil) is not nil")
		}
	})
}

func BenchmarkRedact1MiB(b *testing.B) {
	vals := make([]string, 10)
	for i := range vals {
		vals[i] = fmt.Sprintf("s3cr3t-%02d-%x", i, uint64(i)*0x9e3779b97f4a7c15)
	}
	r := NewRedactor(vals...)
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20; i++ {
		fmt.Fprintf(&sb, "%06d the quick brown fox jumps over the lazy dog; status=ok path=/srv/app/log\n", i)
		if i%500 == 0 {
			sb.WriteString(vals[(i/500)%len(vals)])
		}
	}
	text := []byte(sb.String()[:1<<20])
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		r.Bytes(text)
	}
}

// The worst set the limits allow in shape: 64 multi-line base64 values (PEM
// keys, say), thousands of line patterns, over 1 MiB of base64-heavy text.
func BenchmarkRedactManyKeys(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	line := func() string {
		var sb strings.Builder
		for range 64 {
			sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		return sb.String()
	}
	vals := make([]string, 64)
	for i := range vals {
		var sb strings.Builder
		sb.WriteString("-----BEGIN PRIVATE KEY-----\n")
		for range 50 {
			sb.WriteString(line() + "\n")
		}
		sb.WriteString("-----END PRIVATE KEY-----\n")
		vals[i] = sb.String()
	}
	r := NewRedactor(vals...)
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		sb.WriteString(line() + "\n")
	}
	text := []byte(sb.String())
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		r.Bytes(text)
	}
}
