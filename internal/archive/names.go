package archive

import (
	"path"
	"strings"
)

// cleanName normalizes an entry name (from a tar header, or a path handed to
// PackFiles) into the form used in the output: relative, slash-separated,
// cleaned, without "./" or a trailing "/". It refuses absolute names and any
// ".." element, even one that would stay inside (a/../b): one simple rule on
// both the host and the guest side. The root itself ("." or "./") yields "".
func cleanName(name string) (string, error) {
	if name == "" {
		return "", badArchive("an entry has an empty name; the archive is corrupt, recreate it")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", badArchive("entry %q has a NUL byte in its name; recreate the archive without it", name)
	}
	if strings.HasPrefix(name, "/") {
		return "", outside("entry %q has an absolute name; use names relative to the workspace root", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", outside("entry %q has a \"..\" element and may point outside the workspace; use plain relative names", name)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// parents lists the directories above a cleaned name, outermost first:
// "a/b/c" -> ["a", "a/b"].
func parents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	return out
}
