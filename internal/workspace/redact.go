package workspace

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/wsdiff"
)

// redactTree rewrites every regular file under root with secret values
// redacted (an export, before it is moved into place). Modes and times stay.
func redactTree(root string, red *secrets.Redactor) error {
	if red == nil {
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return redactFile(p, red)
	})
}

func redactFile(p string, red *secrets.Redactor) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".pyro-redact-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := io.Copy(tmp, red.Reader(src)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), st.ModTime(), st.ModTime()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// redactDiff hides secret values in a diff's paths and text.
func redactDiff(res *wsdiff.Result, red *secrets.Redactor) {
	if res == nil || red == nil {
		return
	}
	for i := range res.Changes {
		c := &res.Changes[i]
		c.Path, c.Diff, c.Summary = red.String(c.Path), red.String(c.Diff), red.String(c.Summary)
	}
	res.Patch = red.String(res.Patch)
}
