package wsdiff

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

const (
	contextLines = 3
	sniffLen     = 8 << 10
)

// isText reports whether b looks like text: no NUL byte in its first 8 KiB
// and valid UTF-8 throughout.
func isText(b []byte) bool {
	if bytes.IndexByte(b[:min(len(b), sniffLen)], 0) >= 0 {
		return false
	}
	return utf8.Valid(b)
}

// splitLines cuts b after every newline; a last line without one is kept.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// side is one side of a file diff; nil means the file is absent.
type side struct {
	content []byte
	mode    os.FileMode // permission bits
}

// gitMode is the git spelling of a regular file's mode, e.g. "100644".
func gitMode(m os.FileMode) string { return fmt.Sprintf("100%03o", m.Perm()) }

// fileDiff writes the git-style section that turns old into new (either may
// be nil): "diff --git" header, mode lines, and unified hunks with three
// lines of context; go-gitdiff and patch -p1 apply it. It also returns the
// number of lines added and removed.
func fileDiff(path string, old, new *side) (diff string, added, removed int) {
	var b strings.Builder
	a, bn := quoteName("a/"+path), quoteName("b/"+path)
	fmt.Fprintf(&b, "diff --git %s %s\n", a, bn)
	var oldLines, newLines []string
	switch {
	case old == nil:
		fmt.Fprintf(&b, "new file mode %s\n", gitMode(new.mode))
		a = devNull
		newLines = splitLines(new.content)
	case new == nil:
		fmt.Fprintf(&b, "deleted file mode %s\n", gitMode(old.mode))
		bn = devNull
		oldLines = splitLines(old.content)
	default:
		if old.mode.Perm() != new.mode.Perm() {
			fmt.Fprintf(&b, "old mode %s\nnew mode %s\n", gitMode(old.mode), gitMode(new.mode))
		}
		if bytes.Equal(old.content, new.content) {
			return b.String(), 0, 0
		}
		oldLines, newLines = splitLines(old.content), splitLines(new.content)
	}
	groups := groupedOpCodes(oldLines, newLines, contextLines)
	if len(groups) == 0 {
		return b.String(), 0, 0
	}
	fmt.Fprintf(&b, "--- %s%s\n+++ %s%s\n", a, nameTab(a), bn, nameTab(bn))
	for _, g := range groups {
		first, last := g[0], g[len(g)-1]
		fmt.Fprintf(&b, "@@ -%s +%s @@\n", hunkRange(first.I1, last.I2), hunkRange(first.J1, last.J2))
		for _, c := range g {
			if c.Tag == 'e' {
				writeLines(&b, ' ', oldLines[c.I1:c.I2])
				continue
			}
			if c.Tag == 'r' || c.Tag == 'd' {
				writeLines(&b, '-', oldLines[c.I1:c.I2])
				removed += c.I2 - c.I1
			}
			if c.Tag == 'r' || c.Tag == 'i' {
				writeLines(&b, '+', newLines[c.J1:c.J2])
				added += c.J2 - c.J1
			}
		}
	}
	return b.String(), added, removed
}

// hunkRange formats a hunk's line range as diff -u does.
func hunkRange(start, stop int) string {
	n := stop - start
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func writeLines(b *strings.Builder, op byte, lines []string) {
	for _, l := range lines {
		b.WriteByte(op)
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// nameTab is the tab git puts after a "---"/"+++" name that has a space,
// so that patch does not take the rest for a timestamp.
func nameTab(name string) string {
	if strings.Contains(name, " ") {
		return "\t"
	}
	return ""
}

// quoteName C-quotes a name the way git does when it has a double quote, a
// backslash, a control or a non-ASCII byte; other names are left as they are.
func quoteName(name string) string {
	need := false
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			need = true
			break
		}
	}
	if !need {
		return name
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\v':
			b.WriteString(`\v`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, `\%03o`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
