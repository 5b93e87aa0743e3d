package env

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// sha256File hashes path, checking ctx between chunks and reporting progress
// (bytes done, total) when progress is not nil.
func sha256File(ctx context.Context, path string, progress func(done, total int64)) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var done int64
	lastReport := int64(-1)
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, err
		}
		n, rerr := f.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			done += int64(n)
			if progress != nil && done-lastReport >= 64<<20 {
				progress(done, st.Size())
				lastReport = done
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", 0, rerr
		}
	}
	if progress != nil {
		progress(done, st.Size())
	}
	return hex.EncodeToString(h.Sum(nil)), done, nil
}

// removeTree deletes path recursively, but refuses to when something is
// mounted at or below it (a leaked bind mount of /dev or /proc would
// otherwise take host files with it). It first tries a lazy unmount.
func removeTree(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if mounts := mountsUnder(abs); len(mounts) > 0 {
		// Deepest first.
		for i := len(mounts) - 1; i >= 0; i-- {
			syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
		if left := mountsUnder(abs); len(left) > 0 {
			return fmt.Errorf("refusing to remove %s: %s is still mounted", abs, left[0])
		}
	}
	return os.RemoveAll(abs)
}

// mountsUnder lists mount points at or below dir, in mountinfo order.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMountPath decodes the octal escapes (\040 etc.) of mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			okOctal := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					okOctal = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if okOctal {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fileSize returns the apparent size of path, or -1 when it is not a regular file.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return -1
	}
	return st.Size()
}
