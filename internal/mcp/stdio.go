package mcp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// maxLine bounds one inbound JSON-RPC line.
const maxLine = 16 << 20

// lockedWriter serializes whole-line writes from the SDK and from the
// malformed-input filter, so responses never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) Close() error { return nil }

// filterMalformed copies JSON-RPC lines from in to the returned reader. A
// line that is not a JSON-RPC object gets a parse-error response on out and
// is dropped, so one bad line from a client does not end the session.
func filterMalformed(in io.Reader, out io.Writer) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		r := bufio.NewReaderSize(in, 64<<10)
		for {
			line, err := readLine(r)
			if len(bytes.TrimSpace(line)) > 0 {
				if problem := checkMessage(line); problem != "" {
					resp, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil,
						"error": map[string]any{"code": -32700, "message": "parse error: " + problem}})
					out.Write(append(resp, '\n'))
				} else if _, werr := pw.Write(append(line, '\n')); werr != nil {
					return
				}
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// readLine reads one line without its newline, refusing lines over maxLine
// (the rest of such a line is discarded).
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) <= maxLine {
			line = append(line, chunk...)
		} else {
			line = []byte("\x00too long") // becomes a parse error
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimRight(line, "\r\n"), err
	}
}

func checkMessage(line []byte) string {
	trimmed := bytes.TrimSpace(line)
	if trimmed[0] == '[' && json.Valid(trimmed) {
		return "" // a batch: the SDK answers it
	}
	var m struct {
		JSONRPC string `json:"jsonrpc"`
	}
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return fmt.Sprintf("not a JSON object: %v", err)
	}
	if m.JSONRPC != "2.0" {
		return `missing "jsonrpc": "2.0"`
	}
	return ""
}

// stdioTransport is the SDK's IO transport over stdin/stdout with the filter.
func stdioTransport() (io.ReadCloser, io.WriteCloser) {
	w := &lockedWriter{w: os.Stdout}
	return filterMalformed(os.Stdin, w), w
}
