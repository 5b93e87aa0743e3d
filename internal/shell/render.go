package shell

import (
	"bytes"
	"io"
	"strings"

	uv "github.com/charmbracelet/ultraviolet"
	"github.com/charmbracelet/x/vt"
)

// minScrollback is the least scrollback a plain rendering keeps; it grows
// with the input so that every line that scrolls past the screen is kept.
const minScrollback = 10000

// renderBudget bounds the work of a plain rendering, in cells moved. The
// emulator copies the whole screen (cols x rows cells) each time a line
// scrolls, so a long output on a big screen is costly: only its last lines
// (as many as the budget allows) are replayed on a full-size screen, the
// earlier ones on a one-row screen, which gives the same text for line by
// line output and stays cheap.
const renderBudget = 100_000_000

// renderPlain replays raw terminal output on a fresh emulator of cols x rows
// and returns what a person would read: the lines that scrolled off the top
// followed by the screen, each right-trimmed, without trailing empty lines.
// When the output leaves the terminal on the alternate screen (vi, top,
// less), the result is that screen alone. Escape sequences vanish, carriage
// returns and backspaces take effect, invalid UTF-8 reads as U+FFFD. A panic
// in the emulator falls back to a plain strip of escape sequences.
func renderPlain(data []byte, cols, rows int) (out string) {
	if len(data) == 0 {
		return ""
	}
	defer func() {
		if recover() != nil {
			out = stripEscapes(data)
		}
	}()
	cols, rows = max(cols, 1), max(rows, 1)
	data = bytes.ToValidUTF8(data, []byte("\uFFFD"))

	var lines []string
	split := budgetSplit(data, cols, rows)
	if split > 0 {
		head, _, ok := replay(data[:split], cols, 1)
		if !ok {
			return stripEscapes(data)
		}
		// data[:split] ends with a newline: every line before it is in the
		// scrollback, the one-row screen holds the empty line after it.
		if n := len(head); n > 0 && head[n-1] == "" {
			head = head[:n-1]
		}
		lines = head
	}
	tail, alt, ok := replay(data[split:], cols, rows)
	if !ok {
		return stripEscapes(data)
	}
	if alt {
		lines = nil
	}
	lines = append(lines, tail...)
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

// budgetSplit returns where to start replaying data on the full-size screen:
// 0, or just after a newline such that the rest stays within renderBudget.
func budgetSplit(data []byte, cols, rows int) int {
	maxLines := max(renderBudget/(cols*rows), 100)
	if bytes.Count(data, []byte{'\n'})+len(data)/cols <= maxLines {
		return 0
	}
	// Walk back over maxLines newlines (fewer when long lines wrap).
	lines, i := 0, len(data)
	for i > 0 {
		j := bytes.LastIndexByte(data[:i], '\n')
		if j < 0 {
			return 0
		}
		lines += 1 + (i-j-1)/cols
		if lines > maxLines {
			// data[j+1:i] does not fit: start after the newline at i.
			return min(i+1, len(data))
		}
		i = j
	}
	return 0
}

// replay writes data to a fresh cols x rows emulator and returns its
// scrollback and screen lines (trailing empty ones included), and whether
// it ended on the alternate screen, in which case the lines are that screen
// alone. ok is false when the emulator cannot be used safely.
func replay(data []byte, cols, rows int) (lines []string, alt, ok bool) {
	emu := vt.NewEmulator(cols, rows)
	// The emulator answers terminal queries (cursor position, device
	// attributes, ...) by writing to its input pipe, which blocks until
	// someone reads. Nobody types into this replay: closing the pipe's write
	// side up front makes every answer fail at once instead of blocking.
	pw, isPipe := emu.InputPipe().(*io.PipeWriter)
	if !isPipe {
		return nil, false, false
	}
	_ = pw.Close()
	defer emu.Close()
	// Pushing into a full scrollback costs a copy of it per line: size it so
	// that it does not fill up (a line needs at least one byte of input).
	emu.SetScrollbackSize(max(minScrollback, len(data)+2*rows))
	if _, err := emu.Write(data); err != nil {
		return nil, false, false
	}
	alt = emu.IsAltScreen()
	if !alt {
		if sb := emu.Scrollback(); sb != nil {
			for _, l := range sb.Lines() {
				lines = append(lines, lineText(len(l), func(x int) *uv.Cell { return &l[x] }))
			}
		}
	}
	w, h := emu.Width(), emu.Height()
	for y := range h {
		lines = append(lines, lineText(w, func(x int) *uv.Cell { return emu.CellAt(x, y) }))
	}
	return lines, alt, true
}

// lineText is the text of one row of cells, right-trimmed of spaces. The
// zero cells that follow a wide character are skipped.
func lineText(width int, at func(x int) *uv.Cell) string {
	var b strings.Builder
	for x := range width {
		c := at(x)
		if c == nil || c.IsZero() {
			continue
		}
		if c.Content == "" {
			b.WriteByte(' ')
			continue
		}
		b.WriteString(c.Content)
	}
	return strings.TrimRight(b.String(), " ")
}

// stripEscapes is the fallback rendering: it removes escape sequences and
// control characters other than newline and tab, and turns invalid UTF-8
// into U+FFFD.
func stripEscapes(data []byte) string {
	const (
		text = iota
		esc
		csi
		str    // OSC, DCS, SOS, PM, APC: up to BEL or ST
		strEsc // ESC seen inside a string
	)
	var b strings.Builder
	b.Grow(len(data))
	state := text
	for _, c := range data {
		switch state {
		case text:
			switch {
			case c == 0x1b:
				state = esc
			case c == '\n' || c == '\t':
				b.WriteByte(c)
			case c < 0x20 || c == 0x7f:
				// other controls: dropped
			default:
				b.WriteByte(c)
			}
		case esc:
			switch c {
			case '[':
				state = csi
			case ']', 'P', 'X', '^', '_':
				state = str
			default:
				if c >= 0x20 && c <= 0x2f {
					// intermediate byte (charset designation etc.): one more byte follows
					continue
				}
				state = text
			}
		case csi:
			if c >= 0x40 && c <= 0x7e {
				state = text
			}
		case str:
			switch c {
			case 0x07:
				state = text
			case 0x1b:
				state = strEsc
			}
		case strEsc:
			if c == '\\' {
				state = text
			} else {
				state = str
			}
		}
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}
