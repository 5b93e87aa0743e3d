package wsdiff

import (
	"sort"

	"github.com/pmezard/go-difflib/difflib"
)

// groupedOpCodes is difflib's GetGroupedOpCodes(n) over a faster edit
// script: difflib's matcher costs about (changes x lines), which takes
// seconds on a large file with many scattered changes, so both sides are
// first cut at anchors (lines that occur once in each side, kept in order, as
// patience diff does) and difflib only matches the gaps between them.
func groupedOpCodes(a, b []string, n int) [][]difflib.OpCode {
	return group(opCodes(a, b), n)
}

func opCodes(a, b []string) []difflib.OpCode {
	var out []difflib.OpCode
	add := func(c difflib.OpCode) {
		if k := len(out) - 1; k >= 0 && c.Tag == 'e' && out[k].Tag == 'e' && out[k].I2 == c.I1 && out[k].J2 == c.J1 {
			out[k].I2, out[k].J2 = c.I2, c.J2
			return
		}
		out = append(out, c)
	}
	ai, bj := 0, 0
	for _, an := range append(anchors(a, b), [2]int{len(a), len(b)}) {
		for _, c := range difflib.NewMatcher(a[ai:an[0]], b[bj:an[1]]).GetOpCodes() {
			add(difflib.OpCode{Tag: c.Tag, I1: c.I1 + ai, I2: c.I2 + ai, J1: c.J1 + bj, J2: c.J2 + bj})
		}
		if an[0] < len(a) {
			add(difflib.OpCode{Tag: 'e', I1: an[0], I2: an[0] + 1, J1: an[1], J2: an[1] + 1})
		}
		ai, bj = an[0]+1, an[1]+1
	}
	return out
}

// anchors pairs the lines that occur exactly once in a and once in b, and
// keeps the longest run of pairs in the same order on both sides.
func anchors(a, b []string) [][2]int {
	type count struct{ a, b, ai, bj int }
	counts := map[string]*count{}
	for i, l := range a {
		c := counts[l]
		if c == nil {
			c = &count{}
			counts[l] = c
		}
		c.a++
		c.ai = i
	}
	for j, l := range b {
		if c := counts[l]; c != nil {
			c.b++
			c.bj = j
		}
	}
	var pairs [][2]int
	for i, l := range a {
		if c := counts[l]; c.a == 1 && c.b == 1 {
			pairs = append(pairs, [2]int{i, c.bj})
		}
	}
	// Longest increasing subsequence of the b indexes (patience sorting).
	var tails []int // tails[k]: index into pairs ending the best run of length k+1
	prev := make([]int, len(pairs))
	for p := range pairs {
		k := sort.Search(len(tails), func(k int) bool { return pairs[tails[k]][1] >= pairs[p][1] })
		prev[p] = -1
		if k > 0 {
			prev[p] = tails[k-1]
		}
		if k == len(tails) {
			tails = append(tails, p)
		} else {
			tails[k] = p
		}
	}
	out := make([][2]int, len(tails))
	for k, p := len(tails)-1, -1; k >= 0; k-- {
		if p == -1 {
			p = tails[k]
		} else {
			p = prev[p]
		}
		out[k] = pairs[p]
	}
	return out
}

// group is difflib's GetGroupedOpCodes: hunks with n lines of context.
func group(codes []difflib.OpCode, n int) [][]difflib.OpCode {
	if len(codes) == 0 {
		return nil
	}
	codes = append([]difflib.OpCode(nil), codes...)
	if c := &codes[0]; c.Tag == 'e' {
		c.I1, c.J1 = max(c.I1, c.I2-n), max(c.J1, c.J2-n)
	}
	if c := &codes[len(codes)-1]; c.Tag == 'e' {
		c.I2, c.J2 = min(c.I2, c.I1+n), min(c.J2, c.J1+n)
	}
	var groups [][]difflib.OpCode
	var g []difflib.OpCode
	for _, c := range codes {
		if c.Tag == 'e' && c.I2-c.I1 > 2*n {
			g = append(g, difflib.OpCode{Tag: 'e', I1: c.I1, I2: min(c.I2, c.I1+n), J1: c.J1, J2: min(c.J2, c.J1+n)})
			groups = append(groups, g)
			g = nil
			c.I1, c.J1 = max(c.I1, c.I2-n), max(c.J1, c.J2-n)
		}
		g = append(g, c)
	}
	if len(g) > 0 && !(len(g) == 1 && g[0].Tag == 'e') {
		groups = append(groups, g)
	}
	return groups
}
