package env

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// hostTool is something a build needs on the host: a command found in PATH
// (Cmd) or a file that must exist (File), and the Debian package providing it.
type hostTool struct {
	Cmd     string
	File    string
	Package string
}

func (t hostTool) label() string {
	if t.Cmd != "" {
		return t.Cmd
	}
	return t.File
}

var (
	toolTar        = hostTool{Cmd: "tar", Package: "tar"}
	toolXz         = hostTool{Cmd: "xz", Package: "xz-utils"}
	toolDpkgQuery  = hostTool{Cmd: "dpkg-query", Package: "dpkg"}
	toolMake       = hostTool{Cmd: "make", Package: "build-essential"}
	toolGcc        = hostTool{Cmd: "gcc", Package: "build-essential"}
	toolFlex       = hostTool{Cmd: "flex", Package: "flex"}
	toolBison      = hostTool{Cmd: "bison", Package: "bison"}
	toolBc         = hostTool{Cmd: "bc", Package: "bc"}
	toolLibelf     = hostTool{File: "/usr/include/libelf.h", Package: "libelf-dev"}
	toolKernelSrc  = hostTool{File: kernelSourceTarball, Package: kernelSourcePackage}
	toolMmdebstrap = hostTool{Cmd: "mmdebstrap", Package: "mmdebstrap"}
	toolMkfsExt4   = hostTool{Cmd: "mkfs.ext4", Package: "e2fsprogs"}
)

// The guest kernel build: tinyconfig + fragment, objtool needs libelf. It does
// not need libssl-dev: module signing and trusted keyrings are off (no
// certs/extract-cert, no scripts/sign-file).
var kernelTools = []hostTool{toolDpkgQuery, toolKernelSrc, toolTar, toolXz, toolMake, toolGcc, toolFlex, toolBison, toolBc, toolLibelf}

var baseTools = []hostTool{toolMmdebstrap, toolTar}

var imageTools = []hostTool{toolTar, toolMkfsExt4, toolDpkgQuery}

// extraToolDirs are searched after PATH: mkfs.ext4 lives in /usr/sbin, which
// a non-root PATH often lacks. A variable so tests can empty it.
var extraToolDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// lookTool resolves a command name to an absolute path.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range extraToolDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// checkTools verifies every tool at once and names all missing ones with the
// apt-get line that installs them.
func checkTools(tools ...hostTool) error {
	var missing []string
	var pkgs []string
	seen := map[string]bool{}
	for _, t := range tools {
		ok := false
		if t.Cmd != "" {
			_, err := lookTool(t.Cmd)
			ok = err == nil
		} else if _, err := os.Stat(t.File); err == nil {
			ok = true
		}
		if ok || seen[t.label()] {
			continue
		}
		seen[t.label()] = true
		missing = append(missing, t.label())
		if !seen["pkg:"+t.Package] {
			seen["pkg:"+t.Package] = true
			pkgs = append(pkgs, t.Package)
		}
	}
	switch {
	case len(missing) == 0:
		return nil
	case len(missing) == 1:
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"host tool %s is missing (Debian package %s): install it with: apt-get install -y %s",
			missing[0], pkgs[0], pkgs[0])
	default:
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"host tools %s are missing: install them with: apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
}

// toolEnv is the environment for external build commands: the caller's,
// minus variables that would steer make or kbuild, with the sbin directories
// appended to PATH and a C locale.
func toolEnv(extra ...string) []string {
	drop := func(k string) bool {
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS",
			"ARCH", "SUBARCH", "CROSS_COMPILE", "O", "LOCALVERSION", "INSTALL_PATH",
			"LANG", "LANGUAGE", "PATH", "TMPDIR":
			return true
		}
		return strings.HasPrefix(k, "KBUILD_") || strings.HasPrefix(k, "KCONFIG_") || strings.HasPrefix(k, "LC_")
	}
	var out []string
	path := os.Getenv("PATH")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop(k) {
			out = append(out, kv)
		}
	}
	parts := filepath.SplitList(path)
	for _, d := range extraToolDirs {
		found := false
		for _, p := range parts {
			if p == d {
				found = true
			}
		}
		if !found {
			parts = append(parts, d)
		}
	}
	out = append(out, "PATH="+strings.Join(parts, string(os.PathListSeparator)), "LC_ALL=C", "LANG=C")
	return append(out, extra...)
}

// RequireTool resolves a host command (PATH, then the sbin directories), or
// fails with host_tool_missing naming the Debian package that provides it.
func RequireTool(cmd, pkg string) (string, error) {
	if p, err := lookTool(cmd); err == nil {
		return p, nil
	}
	if err := checkTools(hostTool{Cmd: cmd, Package: pkg}); err != nil {
		return "", err
	}
	return lookTool(cmd)
}
