//go:build linux

package agent

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// drainAll runs an output over data and returns the bytes it forwarded.
func drainAll(t *testing.T, limit int64, data []byte) (*output, []byte) {
	t.Helper()
	host, guest := net.Pipe()
	got := make(chan []byte)
	go func() {
		var b bytes.Buffer
		for {
			kind, p, err := agentproto.ReadFrame(host)
			if err != nil {
				got <- b.Bytes()
				return
			}
			if kind != agentproto.FrameStdout {
				t.Errorf("frame kind %d", kind)
			}
			b.Write(p)
		}
	}()
	o := &output{kind: agentproto.FrameStdout, limit: limit}
	o.drain(io.MultiReader(bytes.NewReader(data)), &frameWriter{conn: guest})
	guest.Close()
	return o, <-got
}

func TestOutputKeepsHeadAndTail(t *testing.T) {
	var data bytes.Buffer
	for i := range 100000 {
		fmt.Fprintf(&data, "line %d\n", i)
	}
	o, got := drainAll(t, 16<<10, data.Bytes())
	if int64(len(got)) > 16<<10 || !o.truncated() {
		t.Fatalf("%d bytes forwarded, truncated %v", len(got), o.truncated())
	}
	if !bytes.HasPrefix(got, []byte("line 0\nline 1\n")) || !bytes.HasSuffix(got, []byte("line 99998\nline 99999\n")) {
		t.Errorf("head or tail lost: %q ... %q", got[:40], got[len(got)-40:])
	}
	omitted := int64(data.Len()) - (int64(len(got)) - int64(len(marker(got))))
	if !strings.Contains(marker(got), fmt.Sprintf("%d bytes omitted", omitted)) {
		t.Errorf("marker %q, want %d omitted", marker(got), omitted)
	}
}

func marker(b []byte) string {
	i := bytes.Index(b, []byte("\n[... pyro: "))
	if i < 0 {
		return ""
	}
	j := bytes.Index(b[i+1:], []byte("]\n"))
	return string(b[i : i+1+j+2])
}

// Output that fits is forwarded whole, with no marker; small limits keep
// the head only, as before.
func TestOutputThatFitsIsWhole(t *testing.T) {
	for _, n := range []int{0, 100, 12 << 10, 16 << 10} {
		data := bytes.Repeat([]byte("z"), n)
		o, got := drainAll(t, 16<<10, data)
		if !bytes.Equal(got, data) || o.truncated() {
			t.Errorf("%d bytes: forwarded %d, truncated %v", n, len(got), o.truncated())
		}
	}
	o, got := drainAll(t, 10, []byte("1\n2\n3\n4\n5\n6\n7\n"))
	if string(got) != "1\n2\n3\n4\n5\n" || !o.truncated() {
		t.Errorf("small limit: %q %v", got, o.truncated())
	}
}

func TestRing(t *testing.T) {
	r := &ring{buf: make([]byte, 5)}
	var all []byte
	for _, p := range []string{"ab", "cde", "f", "ghijklm", "n", "opq"} {
		r.write([]byte(p))
		all = append(all, p...)
		want := all[max(0, len(all)-5):]
		if got := r.bytes(); !bytes.Equal(got, want) {
			t.Fatalf("after %q: %q, want %q", p, got, want)
		}
	}
}
