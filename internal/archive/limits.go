package archive

import (
	"context"
	"io"
)

const (
	defaultMaxBytes   int64 = 2 << 30
	defaultMaxEntries       = 200_000

	// entryOverhead bounds the tar bytes one entry may take besides its
	// content: header, PAX or GNU long-name records for a PATH_MAX name,
	// and padding. Used to cap the whole (decompressed) input stream.
	entryOverhead = 8 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = defaultMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = defaultMaxEntries
	}
	return l
}

// streamCap is the most raw (decompressed) tar bytes an input may take.
func (l Limits) streamCap() int64 {
	return l.MaxBytes + int64(l.MaxEntries+2)*entryOverhead
}

// budget enforces Limits over one call: entries, the sum of declared sizes,
// and the bytes actually copied.
type budget struct {
	lim      Limits
	what     string // "the seed", "the export": used in messages
	entries  int
	declared int64
	actual   int64
}

func newBudget(lim Limits, what string) *budget {
	return &budget{lim: lim.withDefaults(), what: what}
}

func (b *budget) entry() error {
	b.entries++
	if b.entries > b.lim.MaxEntries {
		return tooLarge("%s has more than %d entries; make it smaller (leave out build outputs and dependencies) or raise the entry limit",
			b.what, b.lim.MaxEntries)
	}
	return nil
}

func (b *budget) declare(name string, size int64) error {
	if size < 0 {
		return badArchive("entry %q has a negative size; the archive is corrupt, recreate it", name)
	}
	b.declared += size
	if b.declared > b.lim.MaxBytes || b.declared < 0 {
		return b.overBytes()
	}
	return nil
}

func (b *budget) overBytes() error {
	return tooLarge("%s holds more than %d bytes of file content; make it smaller (leave out build outputs and dependencies) or raise the size limit",
		b.what, b.lim.MaxBytes)
}

// content meters the bytes actually copied out of r against MaxBytes.
func (b *budget) content(ctx context.Context, r io.Reader) *meter {
	return &meter{ctx: ctx, r: r, n: &b.actual, max: b.lim.MaxBytes, over: b.overBytes}
}

// stream meters a whole (decompressed) input stream against streamCap, so
// that a gzip bomb is stopped by counting decompressed bytes whatever the
// headers inside claim.
func (b *budget) stream(ctx context.Context, r io.Reader) *meter {
	var n int64
	return &meter{ctx: ctx, r: r, n: &n, max: b.lim.streamCap(), over: func() error {
		return tooLarge("%s stream is larger than %d bytes once decompressed; make it smaller or raise the size limit",
			b.what, b.lim.streamCap())
	}}
}

// meter is a reader that honours ctx and stops once *n exceeds max. Its own
// error (err) is sticky and typed; readErr keeps the first error of the
// reader below other than io.EOF. Callers check them to tell read errors from
// the errors of whatever the bytes are copied to.
type meter struct {
	ctx     context.Context
	r       io.Reader
	n       *int64
	max     int64
	over    func() error
	err     error
	readErr error
}

func (m *meter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if m.ctx.Err() != nil {
		m.err = canceled(m.ctx)
		return 0, m.err
	}
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF && m.readErr == nil {
		m.readErr = err
	}
	*m.n += int64(n)
	if *m.n > m.max {
		m.err = m.over()
		return 0, m.err
	}
	return n, err
}
