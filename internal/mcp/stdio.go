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
			line, tooLong, err := readLine(r)
			if tooLong != nil {
				resp, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": tooLong.id(),
					"error": map[string]any{"code": -32600, "message": fmt.Sprintf(
						"message too large: %d bytes, over the %d MiB limit of one message; send large content as files: "+
							"workspace_sync_push of a host directory or archive, or several smaller workspace_file_write calls",
						tooLong.size, maxLine>>20)}})
				out.Write(append(resp, '\n'))
			} else if len(bytes.TrimSpace(line)) > 0 {
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

// readLine reads one line without its newline. A line over maxLine is not
// kept: it is scanned as it passes, for its request id, and reported.
func readLine(r *bufio.Reader) ([]byte, *idScanner, error) {
	var line []byte
	var over *idScanner
	for {
		chunk, err := r.ReadSlice('\n')
		switch {
		case over != nil:
			over.feed(chunk)
		case len(line)+len(chunk) > maxLine:
			over = &idScanner{}
			over.feed(line)
			over.feed(chunk)
			line = nil
		default:
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimRight(line, "\r\n"), over, err
	}
}

// idScanner finds the top-level "id" of a JSON object fed to it in pieces,
// in constant memory, so that a message too large to keep can still be
// answered for its request.
type idScanner struct {
	size     int
	depth    int
	inString bool
	escaped  bool
	key      []byte // the current top-level string, while short
	lastKey  string
	value    []byte // the raw value of "id", once seen
	inValue  bool
	found    bool
}

func (s *idScanner) feed(p []byte) {
	s.size += len(p)
	for _, c := range p {
		if s.found {
			return
		}
		if s.inValue && s.depth == 1 && !s.inString && (c == ',' || c == '}') {
			s.found = true
			return
		}
		if s.inValue && len(s.value) < 256 {
			s.value = append(s.value, c)
		}
		switch {
		case s.inString:
			switch {
			case s.escaped:
				s.escaped = false
			case c == '\\':
				s.escaped = true
			case c == '"':
				s.inString = false
				if s.depth == 1 && !s.inValue {
					s.lastKey = string(s.key)
				}
			default:
				if s.depth == 1 && len(s.key) < 16 {
					s.key = append(s.key, c)
				}
			}
		case c == '"':
			s.inString, s.key = true, s.key[:0]
		case c == '{' || c == '[':
			s.depth++
		case c == '}' || c == ']':
			s.depth--
		case c == ':' && s.depth == 1 && s.lastKey == "id":
			s.inValue, s.value = true, nil
		}
	}
}

// id is the request id found, or nil (JSON null) when there was none.
func (s *idScanner) id() json.RawMessage {
	v := bytes.TrimSpace(s.value)
	if !s.found || len(v) == 0 || !json.Valid(v) {
		return nil
	}
	return v
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
