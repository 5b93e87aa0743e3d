package wsdiff

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"strings"
)

const (
	defaultMaxBytes     int64 = 256 << 20
	defaultMaxTextBytes int64 = 1 << 20

	// maxEntries bounds the entries of one tree, whatever their size.
	maxEntries = 200_000
	// entryOverhead bounds the tar bytes one entry may take besides its
	// content (header, long-name records, padding); with MaxBytes and
	// maxEntries it caps the raw stream.
	entryOverhead = 8 << 10
)

// Limits bounds what Compare reads. Zero fields take defaults.
type Limits struct {
	MaxBytes     int64 // total file content read per tree; default 256 MiB
	MaxTextBytes int64 // files larger than this are summarized, not diffed; default 1 MiB
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = defaultMaxBytes
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = defaultMaxTextBytes
	}
	return l
}

const (
	kindFile    = "file"
	kindSymlink = "symlink"
	kindDir     = "dir"
)

// entry is one file, symlink or directory of a tree.
type entry struct {
	kind    string
	mode    os.FileMode // permission bits
	size    int64
	content []byte   // regular files up to MaxTextBytes
	sum     [32]byte // SHA-256 of larger regular files
	large   bool
	target  string // symlinks
}

type tree map[string]*entry

var errStreamCap = errors.New("stream over its size cap")

// capReader fails once more than left bytes are read.
type capReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.over = true
		return 0, errStreamCap
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// readTree reads a tar stream of a workspace tree, treating it as untrusted:
// absolute names and ".." are refused, a hard link is the file it links to
// (which must come earlier), entries other than regular files, hard links,
// directories and symlinks are ignored, and content is bounded by
// lim.MaxBytes. what names the tree in messages.
func readTree(r io.Reader, lim Limits, what string) (tree, error) {
	raw := &capReader{r: r, left: lim.MaxBytes + (maxEntries+2)*entryOverhead}
	tr := tar.NewReader(raw)
	t := tree{}
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			return nil, readErr(raw, err, lim, what)
		}
		if n >= maxEntries {
			return nil, tooLarge("%s has more than %d entries; make the workspace smaller (leave out build outputs and dependencies)", what, maxEntries)
		}
		// Count every entry's declared size: ignored types are read to skip them.
		if h.Size < 0 {
			return nil, badArchive(nil, "%s: entry %q has a negative size", what, h.Name)
		}
		if total += h.Size; total > lim.MaxBytes {
			return nil, overBytes(lim, what)
		}
		var kind string
		switch h.Typeflag {
		case tar.TypeReg:
			kind = kindFile
		case tar.TypeDir:
			kind = kindDir
		case tar.TypeSymlink:
			kind = kindSymlink
		case tar.TypeLink:
			kind = kindFile
		default:
			continue
		}
		name, err := entryName(h.Name, what)
		if err != nil {
			return nil, err
		}
		if name == "" {
			continue // the root
		}
		if h.Typeflag == tar.TypeLink {
			target, err := entryName(h.Linkname, what)
			if err != nil {
				return nil, err
			}
			if e := t[target]; e != nil && e.kind == kindFile {
				t[name] = e
				continue
			}
			return nil, badArchive(nil, "%s: hard link %q points to %q, which is not a file earlier in the archive", what, h.Name, h.Linkname)
		}
		e := &entry{kind: kind, mode: os.FileMode(h.Mode).Perm(), target: h.Linkname}
		if kind == kindFile {
			if err := readContent(tr, h.Size, e, lim); err != nil {
				return nil, readErr(raw, err, lim, what)
			}
		}
		t[name] = e
	}
}

func readContent(tr io.Reader, size int64, e *entry, lim Limits) error {
	e.size = size
	if size > lim.MaxTextBytes {
		e.large = true
		h := sha256.New()
		if _, err := io.CopyN(h, tr, size); err != nil {
			return err
		}
		h.Sum(e.sum[:0])
		return nil
	}
	e.content = make([]byte, size)
	_, err := io.ReadFull(tr, e.content)
	return err
}

// entryName validates a tar entry name; "" is the root.
func entryName(name, what string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", outside("%s: entry %q has an absolute name; names must be relative to %s", what, name, workspaceRoot)
	}
	if trimmed := strings.TrimRight(name, "/"); trimmed == "" || trimmed == "." {
		if name == "" {
			return "", badArchive(nil, "%s: an entry has an empty name; the archive is corrupt", what)
		}
		return "", nil
	}
	p, err := cleanPath(name)
	if err != nil {
		return "", err
	}
	return p, nil
}

func overBytes(lim Limits, what string) error {
	return tooLarge("%s holds more than %d bytes of file content; make the workspace smaller (leave out build outputs and dependencies) or raise the size limit", what, lim.MaxBytes)
}

func readErr(raw *capReader, err error, lim Limits, what string) error {
	if raw.over {
		return tooLarge("%s stream is larger than %d bytes; make the workspace smaller or raise the size limit", what, lim.MaxBytes+(maxEntries+2)*entryOverhead)
	}
	if typed(err) {
		return err
	}
	return badArchive(err, "%s is not a valid tar archive (corrupt or truncated)", what)
}
