package network

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// A plain-HTTP connection to an address allowed by name is checked request
// by request, not only its first one: keep-alive and pipelining would
// otherwise let a guest switch to another site on a shared address. Bytes
// pass through as the guest wrote them; only the framing (head, then a
// Content-Length or chunked body) is parsed, each part bounded.
const (
	maxHTTPHead = 64 << 10
	maxHTTPLine = 4 << 10 // a chunk-size or trailer line
)

var errHTTPRefused = errors.New("request refused by the egress rules")

// errHTTPRefusedLater is errHTTPRefused for a request after the first: the
// ones before it went to the server and still get their answers.
var errHTTPRefusedLater = fmt.Errorf("a later %w", errHTTPRefused)

// guardHTTP copies the guest's requests from src to w while each names an
// allowed host. CONNECT is refused (a tunnel anywhere); after an Upgrade
// request the rest is copied as is (the protocol changes, e.g. WebSocket).
func (s *Stack) guardHTTP(w io.Writer, src io.Reader, dst netip.AddrPort) error {
	br := bufio.NewReaderSize(src, 16<<10)
	refused := errHTTPRefused
	for ; ; refused = errHTTPRefusedLater {
		head, err := readHTTPHead(br)
		if err != nil {
			if errors.Is(err, io.EOF) && len(head) == 0 {
				return nil // the guest is done sending
			}
			return err
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			s.refuse("tcp", dst, "", "not a well-formed HTTP request")
			return refused
		}
		host := hostOnly(req.Host)
		if reason := requestReason(s.allow.Load(), req.Method, host); reason != "" {
			s.refuse("tcp", dst, host, reason)
			return refused
		}
		s.notePlaceholders(dst, host, req.Header)
		if _, err := w.Write(head); err != nil {
			return err
		}
		switch {
		case len(req.TransferEncoding) > 0 && req.TransferEncoding[0] == "chunked":
			err = copyChunked(w, br)
		case req.ContentLength > 0:
			_, err = io.CopyN(w, br, req.ContentLength)
		}
		if err != nil {
			return err
		}
		if req.Header.Get("Upgrade") != "" {
			_, err = io.Copy(w, br)
			return err
		}
	}
}

// requestReason checks one request; "" allows it.
func requestReason(al *allowlist, method, host string) string {
	switch {
	case al == nil: // rules lifted meanwhile
		return ""
	case method == http.MethodConnect:
		return "HTTP CONNECT (a tunnel) to an address allowed by name"
	case host == "":
		return "HTTP request without a Host header"
	case !al.allowsName(host):
		return fmt.Sprintf("HTTP names host %q, which no rule allows (the address is shared with an allowed name)", host)
	}
	return ""
}

func hostOnly(hostport string) string {
	h := hostport
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// readHTTPHead reads a request head, up to and including its blank line.
func readHTTPHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := readLine(br, maxHTTPHead-len(head))
		head = append(head, line...)
		if err != nil {
			return head, err
		}
		if len(head) == len(line) && isBlank(line) {
			head = head[:0] // stray CRLF between requests (allowed by RFC 9112)
			continue
		}
		if isBlank(line) {
			return head, nil
		}
	}
}

// copyChunked copies one chunked body (chunks, last chunk, trailers) raw.
func copyChunked(w io.Writer, br *bufio.Reader) error {
	for {
		line, err := readLine(br, maxHTTPLine)
		if err != nil {
			return err
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		sizeField, _, _ := strings.Cut(strings.TrimSpace(string(line)), ";")
		size, err := strconv.ParseUint(strings.TrimSpace(sizeField), 16, 62)
		if err != nil {
			return errors.New("bad chunk size in an HTTP request body")
		}
		if size == 0 {
			for { // trailers, up to the blank line
				line, err := readLine(br, maxHTTPLine)
				if err != nil {
					return err
				}
				if _, err := w.Write(line); err != nil {
					return err
				}
				if isBlank(line) {
					return nil
				}
			}
		}
		if _, err := io.CopyN(w, br, int64(size)+2); err != nil { // data and its CRLF
			return err
		}
	}
}

// readLine reads through '\n', at most limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > limit {
			return nil, errors.New("HTTP request line or head too long")
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return line, err
		}
	}
}

func isBlank(line []byte) bool { return string(line) == "\r\n" || string(line) == "\n" }
