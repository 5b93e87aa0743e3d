package cli

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// printable returns s as is when a terminal shows it as text, else Go-quoted:
// guest file names and commands may carry escape sequences (`ESC ] 0;title
// BEL` retitles a terminal, C1 CSI moves its cursor) that must not reach the
// user's terminal raw. JSON output keeps the exact bytes.
func printable(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s) // a stray 0x9b byte is CSI to an 8-bit terminal
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Bidi_Control) {
			return strconv.Quote(s)
		}
	}
	return s
}
