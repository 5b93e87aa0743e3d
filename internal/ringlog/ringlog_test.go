package ringlog

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestLog(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, max := range []int{1, 7, 100, 70000, 200000} {
		g := New(max)
		var all []byte
		for i := range 150 {
			n := r.IntN(3 * max / 2)
			if i%10 == 0 {
				n = r.IntN(3*max + 2)
			}
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(r.IntN(256))
			}
			g.Write(p)
			all = append(all, p...)

			if g.end != int64(len(all)) {
				t.Fatalf("max %d: end %d, want %d", max, g.end, len(all))
			}
			wantStart := max64(0, int64(len(all)-max))
			if g.start != wantStart {
				t.Fatalf("max %d: start %d, want %d", max, g.start, wantStart)
			}
			if len(g.buf) > max {
				t.Fatalf("max %d: storage %d", max, len(g.buf))
			}
			from := g.start + r.Int64N(g.end-g.start+1)
			to := from + r.Int64N(g.end-from+1)
			if got := g.Slice(from, to); !bytes.Equal(got, all[from:to]) {
				t.Fatalf("max %d: slice(%d, %d) differs", max, from, to)
			}
		}
		if got := g.Slice(g.start, g.end); !bytes.Equal(got, all[g.start:]) {
			t.Fatalf("max %d: content differs", max)
		}
	}
}

func TestLogGrowsOnDemand(t *testing.T) {
	g := New(4 << 20)
	g.Write([]byte("hello"))
	if len(g.buf) != minRingAlloc {
		t.Fatalf("storage %d after 5 bytes", len(g.buf))
	}
	g.Write(make([]byte, 100<<10))
	if len(g.buf) != 2*minRingAlloc || string(g.Slice(0, 5)) != "hello" {
		t.Fatalf("storage %d", len(g.buf))
	}
}

func max64(a, b int64) int64 { return max(a, b) }
