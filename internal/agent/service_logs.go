//go:build linux

package agent

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// The end of a service's log, read from the end of the file.

// serviceLogs answers the end of a service's log: at most MaxBytes bytes,
// and of those the last TailLines lines.
func (s *server) serviceLogs(fw *frameWriter, req *agentproto.ServiceRequest) error {
	svc, err := s.lookupService(req)
	if err != nil {
		return err
	}
	if req.TailLines < 0 {
		return wireError(agentproto.ErrCodeBadRequest, "tail_lines %d is negative", req.TailLines)
	}
	limit := req.MaxBytes
	switch {
	case limit < 0:
		return wireError(agentproto.ErrCodeBadRequest, "max_bytes %d is negative", limit)
	case limit == 0:
		limit = defaultLogBytes
	case limit > maxLogBytes:
		limit = maxLogBytes
	}
	info := s.services.info(svc)
	data, truncated, err := tailFile(info.LogPath, limit, req.TailLines)
	if err != nil {
		return wireError(agentproto.ErrCodeInternal, "reading the log of %s: %v", req.Name, err)
	}
	return fw.json(agentproto.FrameResult, agentproto.ServiceLogs{Name: req.Name, Log: data, Truncated: truncated})
}

// tailFile reads at most limit bytes from the end of path, then keeps the
// last lines lines of them (0 = all). A missing file is empty.
func tailFile(path string, limit int64, lines int) ([]byte, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []byte{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	size := st.Size()
	n := min(size, limit)
	off := size - n
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	buf = buf[:m] // the log may have been truncated meanwhile
	truncated := off > 0
	if lines > 0 {
		if start := tailStart(buf, lines); start > 0 {
			buf = buf[start:]
			truncated = true
		}
	}
	return buf, truncated, nil
}

// tailStart is the offset in b where its last n lines begin; a final newline
// ends the last line rather than starting an empty one.
func tailStart(b []byte, n int) int {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return i + 1
			}
		}
	}
	return 0
}
