package secrets

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Redacted replaces every secret value pyro shows.
const Redacted = "[REDACTED]"

// minLinePattern is the shortest line of a multi-line value (a PEM key, say)
// that is hidden on its own, so that `head -3 key.pem` is caught too.
const minLinePattern = 8

// Redactor replaces secret values. A nil *Redactor changes nothing, so
// callers need no "has secrets" branch.
type Redactor struct {
	patterns [][]byte // longest first
	first    [256]bool
	maxLen   int
	// Every pattern is at least MinValueBytes (4) long, so the patterns
	// that can match where data begins are those with its first 4 bytes:
	// a scan checks only them, however many values there are.
	byHead map[[4]byte][]int // indexes into patterns, longest first
	starts map[string]bool   // the 1-3 byte starts of patterns
}

// NewRedactor hides each value without its surrounding white space (the
// value as is when that would be too short), and each long enough line of a
// multi-line value. White space around a value stays, so that a file-style
// value ("token\n") printed with its newline does not swallow the line
// break. It returns nil when there is nothing to hide.
func NewRedactor(values ...string) *Redactor {
	uniq := map[string]bool{}
	add := func(p string) {
		if len(p) >= MinValueBytes {
			uniq[p] = true
		}
	}
	for _, v := range values {
		if t := strings.TrimSpace(v); len(t) >= MinValueBytes {
			add(t) // it is in v: every occurrence of v is caught as well
		} else {
			add(v)
		}
		if strings.Contains(v, "\n") {
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) >= minLinePattern {
					add(line)
				}
			}
		}
	}
	if len(uniq) == 0 {
		return nil
	}
	r := &Redactor{byHead: map[[4]byte][]int{}, starts: map[string]bool{}}
	for p := range uniq {
		r.patterns = append(r.patterns, []byte(p))
		r.first[p[0]] = true
		r.maxLen = max(r.maxLen, len(p))
		for n := 1; n < 4; n++ {
			r.starts[p[:n]] = true
		}
	}
	sort.Slice(r.patterns, func(i, j int) bool {
		if len(r.patterns[i]) != len(r.patterns[j]) {
			return len(r.patterns[i]) > len(r.patterns[j])
		}
		return bytes.Compare(r.patterns[i], r.patterns[j]) < 0
	})
	for i, p := range r.patterns {
		head := [4]byte(p[:4])
		r.byHead[head] = append(r.byHead[head], i)
	}
	return r
}

// match reports the longest pattern that data begins with (n is 0 when
// none), and whether data is the proper start of a longer pattern, so that
// more data could make a longer match.
func (r *Redactor) match(data []byte) (n int, partial bool) {
	if len(data) < 4 {
		return 0, r.starts[string(data)]
	}
	for _, k := range r.byHead[[4]byte(data[:4])] { // longest first
		p := r.patterns[k]
		if len(p) > len(data) {
			if !partial && bytes.HasPrefix(p, data) {
				partial = true
			}
		} else if n == 0 && bytes.HasPrefix(data, p) {
			n = len(p)
			break // what follows is shorter: neither longer nor partial
		}
	}
	return n, partial
}

// scan appends data to dst with every pattern replaced; matches that
// overlap (one value ends inside another) are hidden by one Redacted, so no
// part of either shows. The first covered bytes of data lie in a match
// whose Redacted is already out (by an earlier call).
//
// Unless final, scan stops before the first place where a pattern may begin
// but data ends too soon to tell, and returns where that place is (rest) and
// how many bytes from there are already covered; when final, rest is
// len(data). Scanning the rest again with more data gives, at every place,
// the decision that scanning everything at once gives.
func (r *Redactor) scan(dst, data []byte, covered int, final bool) (out []byte, rest, restCovered int) {
	i := 0
	for i < len(data) {
		j := i
		for j < len(data) && !r.first[data[j]] {
			j++
		}
		if j > covered {
			dst = append(dst, data[max(i, covered):j]...)
		}
		if i = j; i == len(data) {
			break
		}
		n, partial := r.match(data[i:])
		switch {
		case partial && !final:
			return dst, i, max(covered-i, 0)
		case n > 0:
			if i >= covered {
				dst = append(dst, Redacted...)
			}
			covered = max(covered, i+n)
		case i >= covered:
			dst = append(dst, data[i])
		}
		// Go on at the next byte, not after the match: another value may
		// begin inside this one and end beyond it.
		i++
	}
	return dst, len(data), 0
}

// Bytes returns b with every value replaced.
func (r *Redactor) Bytes(b []byte) []byte {
	if r == nil {
		return b
	}
	out, _, _ := r.scan(make([]byte, 0, len(b)), b, 0, true)
	return out
}

// String returns s with every value replaced.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	return string(r.Bytes([]byte(s)))
}

// Clipped redacts a piece cut out of longer output: when head is set, s may
// begin in the middle of a value, and when tail is set, it may end in the
// middle of one (with both set, s may lie wholly inside one). Such a
// partial value is replaced as well, however short.
func (r *Redactor) Clipped(s string, head, tail bool) string {
	if r == nil || s == "" {
		return s
	}
	data := []byte(s)
	if head && tail && r.inside(data) {
		return Redacted
	}
	var out []byte
	covered := 0
	if head {
		if n := r.partialHead(data); n > 0 {
			out = append(out, Redacted...)
			covered = n
		}
	}
	out, rest, restCovered := r.scan(out, data, covered, !tail)
	if rest < len(data) && restCovered == 0 {
		// The held tail is the start of a value; when restCovered > 0 it
		// continues a match whose Redacted is already out.
		out = append(out, Redacted...)
	}
	return string(out)
}

// partialHead is the length of the longest start of data that is the end
// (but not the whole) of a pattern.
func (r *Redactor) partialHead(data []byte) int {
	best := 0
	for _, p := range r.patterns {
		// Candidate ends of p start where p holds data's first byte.
		for from := max(1, len(p)-len(data)); len(p)-from > best; from++ {
			k := bytes.IndexByte(p[from:], data[0])
			if k < 0 {
				break
			}
			from += k
			if n := len(p) - from; n > best && bytes.Equal(p[from:], data[:n]) {
				best = n
				break
			}
		}
	}
	return best
}

// inside reports whether data is a part of a longer pattern.
func (r *Redactor) inside(data []byte) bool {
	for _, p := range r.patterns {
		if len(p) > len(data) && bytes.Contains(p, data) {
			return true
		}
	}
	return false
}

// Error returns err with its message redacted. Typed errors keep their code
// and class.
func (r *Redactor) Error(err error) error {
	if r == nil || err == nil {
		return err
	}
	msg := err.Error()
	clean := r.String(msg)
	if clean == msg {
		return err
	}
	var e *errdefs.Error
	if errors.As(err, &e) {
		rest, next := errdefs.Split(err)
		return &errdefs.Error{Code: e.Code, Class: e.Class, Message: r.String(rest), Next: next, Cause: &redactedError{msg: clean, err: err}}
	}
	return &redactedError{msg: clean, err: err}
}

// redactedError keeps the chain for errors.Is while its text is redacted.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Stream redacts output that arrives in pieces: a value split across two
// pieces is still caught. The zero Stream of a nil Redactor passes data on.
// What a Stream holds back is shorter than the longest value.
type Stream struct {
	r       *Redactor
	pending []byte
	covered int // the first covered bytes of pending are already shown as Redacted
}

// NewStream starts a stream.
func (r *Redactor) NewStream() *Stream { return &Stream{r: r} }

// Push takes the next piece and returns what can be shown now; a tail that
// may begin a value is held until the next Push or Flush. The concatenated
// output of all Pushes and the Flush is what String gives for the whole.
func (s *Stream) Push(p []byte) []byte {
	if s.r == nil {
		return p
	}
	data := append(s.pending, p...)
	out, rest, covered := s.r.scan(nil, data, s.covered, false)
	s.pending = append([]byte(nil), data[rest:]...)
	s.covered = covered
	return out
}

// Pending reports whether bytes are held back.
func (s *Stream) Pending() bool { return len(s.pending) > 0 }

// FlushQuiet is Flush for output that went quiet but may go on: a held
// tail of at least minLinePattern bytes that begins a value stays held (it
// is most likely a value printed in two writes), anything shorter (a
// prompt that happens to begin like a value) is shown.
func (s *Stream) FlushQuiet() []byte {
	if s.r != nil && s.covered == 0 && len(s.pending) >= minLinePattern {
		return nil
	}
	return s.Flush()
}

// Flush returns what is held back, redacted as final output.
func (s *Stream) Flush() []byte {
	if s.r == nil || len(s.pending) == 0 {
		return nil
	}
	out, _, _ := s.r.scan(nil, s.pending, s.covered, true)
	s.pending, s.covered = nil, 0
	return out
}

// Reader redacts everything read from rd.
func (r *Redactor) Reader(rd io.Reader) io.Reader {
	if r == nil {
		return rd
	}
	return &reader{src: rd, s: r.NewStream()}
}

type reader struct {
	src io.Reader
	s   *Stream
	out []byte
	err error // io.EOF or the source's error, once it has returned one
	buf [32 << 10]byte
}

// Read returns redacted data; the source's error (or io.EOF) comes once all
// data read before it, the held-back tail included, has been returned.
func (r *reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		n, err := r.src.Read(r.buf[:])
		r.out = append(r.out, r.s.Push(r.buf[:n])...)
		if err != nil {
			r.err = err
			r.out = append(r.out, r.s.Flush()...)
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}
