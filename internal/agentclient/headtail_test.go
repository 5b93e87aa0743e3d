package agentclient

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The host's cap keeps what the agent's keeps: everything up to the cap,
// else the head, a marker naming the omitted bytes, and the tail.
func TestHeadTail(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, max := range []int64{0, 100, 4095, 4096, 10_000, 1 << 20} {
		for _, total := range []int64{0, 1, max - 1, max, max + 1, 3 * max, 5*max + 77} {
			if total < 0 {
				continue
			}
			all := make([]byte, total)
			for i := range all {
				all[i] = byte('a' + r.IntN(26))
			}
			h := newHeadTail(max)
			for p := all; len(p) > 0; {
				n := min(len(p), 1+r.IntN(40_000))
				h.write(p[:n])
				p = p[n:]
			}
			got := h.bytes()
			if total <= max {
				if !bytes.Equal(got, all) || h.truncated() {
					t.Fatalf("max %d total %d: not kept whole (%d bytes, truncated %v)", max, total, len(got), h.truncated())
				}
				continue
			}
			if !h.truncated() || int64(len(got)) > max {
				t.Fatalf("max %d total %d: %d bytes kept, truncated %v", max, total, len(got), h.truncated())
			}
			if max < minTailCap {
				if !bytes.Equal(got, all[:max]) {
					t.Fatalf("max %d total %d: head differs", max, total)
				}
				continue
			}
			head := max - (max/4 + markerReserve)
			tail := max / 4
			marker := fmt.Sprintf("\n[... pyro: %d bytes omitted ...]\n", total-head-tail)
			want := append(append(append([]byte(nil), all[:head]...), marker...), all[total-tail:]...)
			if !bytes.Equal(got, want) {
				t.Fatalf("max %d total %d: head, marker and tail differ", max, total)
			}
		}
	}
}
