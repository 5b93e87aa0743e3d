package wsdiff

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

// applyFragments applies the hunks of one file section to src with
// go-gitdiff's TextApplier. Hunks are applied in the order of their old
// positions; a hunk whose lines (context and removed) are not at the line
// its header names is first moved to the nearest place where they are, after
// the previous hunk.
func applyFragments(name string, src []byte, frags []*gitdiff.TextFragment) ([]byte, error) {
	if len(frags) == 0 {
		return src, nil
	}
	order := make([]int, len(frags))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return int(frags[a].OldPosition - frags[b].OldPosition)
	})
	lines := splitLines(src)
	var out bytes.Buffer
	app := gitdiff.NewTextApplier(&out, bytes.NewReader(src))
	next := 0 // first line index the next hunk may use
	for _, i := range order {
		f, err := locate(frags[i], lines, next)
		if err == nil {
			err = app.ApplyFragment(f)
		}
		if err != nil {
			return nil, patchFailed("%s: hunk %d (%s) does not apply: %v; re-read the file and regenerate the patch",
				name, i+1, hunkHeader(frags[i]), explain(err))
		}
		next = max(int(f.OldPosition)-1, 0) + int(f.OldLines)
	}
	if err := app.Close(); err != nil {
		return nil, patchFailed("%s: the patch does not apply: %v", name, err)
	}
	return out.Bytes(), nil
}

// hunkHeader spells a hunk header as diff -u does ("@@ -3 +3,2 @@").
func hunkHeader(f *gitdiff.TextFragment) string {
	r := func(pos, n int64) string {
		if n == 1 {
			return fmt.Sprint(pos)
		}
		return fmt.Sprintf("%d,%d", pos, n)
	}
	return fmt.Sprintf("@@ -%s +%s @@", r(f.OldPosition, f.OldLines), r(f.NewPosition, f.NewLines))
}

// explain turns a go-gitdiff apply error into a line of text.
func explain(err error) string {
	var ae *gitdiff.ApplyError
	if errors.As(err, &ae) && ae.Line > 0 {
		return fmt.Sprintf("%v (at line %d of the file)", ae.Unwrap(), ae.Line)
	}
	return err.Error()
}

// locate returns f, or a copy moved to the nearest line at or after min
// where its old lines are found. A hunk without old lines (a pure
// insertion) is not moved.
func locate(f *gitdiff.TextFragment, lines []string, min int) (*gitdiff.TextFragment, error) {
	var pre []string
	for _, l := range f.Lines {
		if l.Old() {
			pre = append(pre, l.Line)
		}
	}
	if len(pre) == 0 {
		if f.OldPosition > 0 {
			// "@@ -5,0 ..." inserts after line 5 (diff -U0, git, patch);
			// go-gitdiff would insert before it.
			g := *f
			g.OldPosition++
			return &g, nil
		}
		return f, nil
	}
	want := max(int(f.OldPosition)-1, 0)
	if want >= min && matchAt(lines, pre, want) {
		return f, nil
	}
	for d := 1; want-d >= min || want+d+len(pre) <= len(lines); d++ {
		for _, at := range []int{want - d, want + d} {
			if at >= min && matchAt(lines, pre, at) {
				g := *f
				g.OldPosition = int64(at + 1)
				if g.NewPosition > 0 {
					g.NewPosition += int64(at - want)
				}
				return &g, nil
			}
		}
	}
	return nil, mismatch(lines, pre, want)
}

func matchAt(lines, pre []string, at int) bool {
	if at < 0 || at+len(pre) > len(lines) {
		return false
	}
	for k, l := range pre {
		if lines[at+k] != l {
			return false
		}
	}
	return true
}

// mismatch says why pre does not match at line index want.
func mismatch(lines, pre []string, want int) error {
	for k, l := range pre {
		n := want + k
		if n >= len(lines) {
			return fmt.Errorf("the file has %d lines but the hunk expects %d lines from line %d, and its lines are found nowhere else",
				len(lines), len(pre), want+1)
		}
		if lines[n] != l {
			return fmt.Errorf("line %d is %s but the hunk expects %s, and the hunk's lines are found nowhere else in the file",
				n+1, short(lines[n]), short(l))
		}
	}
	return errors.New("the hunk overlaps the previous hunk")
}

func short(s string) string {
	const maxLen = 80
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return fmt.Sprintf("%q", s)
}
