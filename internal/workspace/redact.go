package workspace

import (
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strconv"

	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/wsdiff"
)

// redactTree rewrites every regular file under root with secret values
// replaced, keeping mode and mtime.
func redactTree(root *os.Root, red *secrets.Redactor) error {
	if red == nil {
		return nil
	}
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return redactFile(root, p, red)
	})
}

func redactFile(root *os.Root, p string, red *secrets.Redactor) error {
	st, err := root.Lstat(p)
	if err != nil {
		return err
	}
	src, err := root.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	tmpName := path.Join(path.Dir(p), ".pyro-redact-"+strconv.FormatUint(rand.Uint64(), 36))
	tmp, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer root.Remove(tmpName) // no-op once renamed
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
	if err := root.Chtimes(tmpName, st.ModTime(), st.ModTime()); err != nil {
		return err
	}
	return root.Rename(tmpName, p)
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
