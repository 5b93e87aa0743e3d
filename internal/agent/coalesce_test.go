package agent

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

type writes struct {
	io.ReadWriteCloser
	got [][]byte
}

func (w *writes) Write(p []byte) (int, error) {
	w.got = append(w.got, bytes.Clone(p))
	return len(p), nil
}

func header(typ byte, length uint32) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

// A data frame's header and body go out as one write; frames without a
// body as they come; the byte counts are the caller's.
func TestJoinFrames(t *testing.T) {
	w := &writes{}
	j := &joinFrames{ReadWriteCloser: w}
	steps := [][]byte{header(yamuxTypeData, 3), []byte("abc"), header(1, 0), header(yamuxTypeData, 0), header(yamuxTypeData, 2), []byte("de")}
	for _, p := range steps {
		if n, err := j.Write(p); n != len(p) || err != nil {
			t.Fatalf("write of %d bytes: %d, %v", len(p), n, err)
		}
	}
	want := [][]byte{append(header(yamuxTypeData, 3), "abc"...), header(1, 0), header(yamuxTypeData, 0), append(header(yamuxTypeData, 2), "de"...)}
	if len(w.got) != len(want) {
		t.Fatalf("%d writes, want %d: %q", len(w.got), len(want), w.got)
	}
	for i := range want {
		if !bytes.Equal(w.got[i], want[i]) {
			t.Errorf("write %d: %q, want %q", i, w.got[i], want[i])
		}
	}
}
