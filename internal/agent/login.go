//go:build linux

package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A workspace command is one shell string run as `/bin/sh -lc` runs it:
// the login profile (/etc/profile, /etc/profile.d/*.sh, ~/.profile...)
// first, then the command. Under software emulation the profile costs a
// good part of a short command's time, and it gives the same environment
// every time unless its files change. So the agent runs the profile once,
// keeps the environment and umask it left, and while none of the profile's
// files changed starts a command with that environment: a simple command
// (words of plain characters naming a program, no shell syntax, no
// builtin) directly, anything else by `/bin/sh -c`. What the command sees
// is the same: its environment, cwd ($PWD), umask, argv. Where the cache
// could differ it is not used: a profile that prints anything, defines
// aliases, sets another umask than the agent's, or fails; a request with
// its own variables (--env, secrets); a ~/.bash_logout (bash as sh runs it
// at exit). Shell functions a profile defines are not seen by commands on
// the fast path (pyro's images define none; see docs/architecture.md).

// loginCache holds the login environment; process-wide (host sessions come
// and go). Whether to look again is decided by an inotify watch of the
// profile's files and the PATH directories (watch.go): while it saw no
// change, the environment and the programs found on its PATH are reused
// without a single stat; after a change, the stamps decide as before.
type loginCache struct {
	mu     sync.Mutex
	stamps string   // the profile files' identity when env was taken
	env    []string // nil: not usable (see above)
	known  bool
	home   string // the HOME env was taken for
	watch  *fsWatch
	found  map[string]string // program name -> its path on env's PATH ("": none)
}

var logins loginCache

// captureMarker separates the umask and aliases from the environment.
const captureMarker = "--pyro-login-env--"

// captureScript prints what a login shell leaves: umask, aliases (none
// expected), then the exported environment, NUL-separated (cat execs with
// exactly the shell's exported variables).
const captureScript = "umask; alias; echo " + captureMarker + "; exec cat /proc/self/environ"

// captureTimeout bounds the profile run; a profile that takes longer is
// not cached (every command then runs it, as before).
const captureTimeout = 20 * time.Second

// profileFiles are what a login `sh` (dash, or bash as sh) reads, and the
// shell itself.
func profileFiles(home string) []string {
	return []string{"/bin/sh", "/etc/profile", "/etc/profile.d", "/etc/environment", "/etc/bash.bashrc",
		home + "/.profile", home + "/.bash_profile", home + "/.bash_login", home + "/.bashrc", home + "/.bash_logout"}
}

// stamps identifies the profile files' current content cheaply: device,
// inode, size and mtime of each (and of each file in /etc/profile.d).
func stamps(home string) string {
	var b strings.Builder
	add := func(p string) {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s:-;", p)
			return
		}
		fmt.Fprintf(&b, "%s:%d:%d:%d;", p, st.Size(), st.ModTime().UnixNano(), inode(st))
	}
	for _, p := range profileFiles(home) {
		add(p)
	}
	if ents, err := os.ReadDir("/etc/profile.d"); err == nil {
		for _, e := range ents {
			add(filepath.Join("/etc/profile.d", e.Name()))
		}
	}
	return b.String()
}

// loginEnv returns the cached login environment, taking it first when the
// profile changed; nil when the cache is not usable.
func (s *server) loginEnv() []string {
	home := envValue(defaultEnv, "HOME")
	logins.mu.Lock()
	defer logins.mu.Unlock()
	if logins.watch == nil {
		logins.watch = newFSWatch()
	}
	if logins.known && logins.home == home && !logins.watch.stale() {
		return logins.env
	}
	// Something may have changed: watch from here on, then look, so a
	// change made while looking shows at the next command.
	logins.found = nil
	logins.watch.arm(profileTargets(home), []string{"/etc/profile.d"})
	st := stamps(home)
	if !logins.known || logins.stamps != st {
		logins.env, logins.stamps, logins.known = s.captureLogin(home), st, true
	}
	logins.home = home
	logins.watch.add(nil, pathDirs(logins.env))
	return logins.env
}

// profileTargets are the profile's files and /etc/profile.d's entries.
func profileTargets(home string) []string {
	files := profileFiles(home)
	if ents, err := os.ReadDir("/etc/profile.d"); err == nil {
		for _, e := range ents {
			files = append(files, filepath.Join("/etc/profile.d", e.Name()))
		}
	}
	return files
}

// pathDirs are env's PATH directories when all are absolute; nil
// otherwise (a relative entry depends on each command's cwd).
func pathDirs(env []string) []string {
	dirs := filepath.SplitList(envValue(env, "PATH"))
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return nil
		}
	}
	return dirs
}

// maxFound bounds the programs remembered.
const maxFound = 512

// lookPath is the package's lookPath for a command on the kept login
// environment, remembered while the watch (armed for that environment's
// PATH by loginEnv just before) has seen no change. Symlinked candidates
// are watched along their targets too, so a target changed is a change.
func (c *loginCache) lookPath(file string, env []string, cwd string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path := envValue(env, "PATH")
	w := c.watch
	if strings.Contains(file, "/") || w == nil || w.fd < 0 || w.broken ||
		path != envValue(c.env, "PATH") || pathDirs(env) == nil {
		return lookPath(file, env, cwd)
	}
	p, ok := c.found[file]
	if !ok {
		for _, dir := range filepath.SplitList(path) {
			cand := filepath.Join(dir, file)
			if fi, err := os.Lstat(cand); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				w.add([]string{cand}, nil)
			}
		}
		p, _ = lookPath(file, env, cwd)
		if c.found == nil || len(c.found) >= maxFound {
			c.found = map[string]string{}
		}
		c.found[file] = p
	}
	if p == "" {
		return "", fmt.Errorf("%s: executable file not found in PATH", file)
	}
	return p, nil
}

// captureLogin runs the profile once and returns the environment it left,
// or nil when that cannot stand in for running it (see the package notes).
func (s *server) captureLogin(home string) []string {
	if _, err := os.Stat(home + "/.bash_logout"); err == nil {
		return nil
	}
	p, err := spawn(s.reaper, "/bin/sh", []string{"/bin/sh", "-lc", captureScript}, slices.Clone(defaultEnv), "/", false)
	if err != nil {
		return nil
	}
	defer p.close()
	var out, errb bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(&out, io.LimitReader(p.stdout, 1<<20)) })
	wg.Go(func() { _, _ = io.Copy(&errb, io.LimitReader(p.stderr, 64<<10)) })
	t := time.NewTimer(captureTimeout)
	defer t.Stop()
	select {
	case ws := <-p.exited:
		wg.Wait()
		if code, _ := exitStatus(ws); code != 0 || errb.Len() > 0 {
			return nil
		}
	case <-t.C:
		killGroup(p.pid)
		return nil
	}
	return parseCapture(out.Bytes(), agentUmask())
}

var umaskLine = regexp.MustCompile(`^[0-7]{3,4}$`)

// parseCapture reads captureScript's output: nil unless it is exactly a
// umask equal to want, no alias, the marker, and the environment.
func parseCapture(out []byte, want string) []string {
	head, env, ok := bytes.Cut(out, []byte("\n"+captureMarker+"\n"))
	if !ok {
		return nil
	}
	mask := strings.TrimSpace(string(head))
	if !umaskLine.MatchString(mask) || strings.TrimLeft(mask, "0") != strings.TrimLeft(want, "0") {
		return nil // output of its own, aliases, or another umask
	}
	var vars []string
	for _, kv := range strings.Split(strings.TrimSuffix(string(env), "\x00"), "\x00") {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil
		}
		switch k {
		case "PWD", "OLDPWD", "_", "SHLVL": // the shell's own: PWD is set per command
			continue
		}
		vars = append(vars, kv)
	}
	return vars
}

// agentUmask is the agent's umask, which its children inherit (read from
// /proc: setting it to read it would race with concurrent starts).
func agentUmask() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func inode(st os.FileInfo) uint64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Ino
	}
	return 0
}

func envValue(env []string, key string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return v
		}
	}
	return ""
}

// plainWord is a word the shell passes on unchanged: no quoting, expansion,
// globbing, redirection or other syntax.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9_./:@%+,=-]+$`)

// shellWords are dash's and bash's reserved words and builtins: a command
// starting with one is left to the shell (its builtin may differ from a
// program of that name, e.g. echo).
var shellWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`! { } case do done elif else esac fi for function if in select then time until while
		. : [ [[ alias bg bind break builtin caller cd chdir command compgen complete continue declare dirs disown echo enable
		eval exec exit export false fc fg getopts hash help history jobs kill let local logout mapfile popd printf pushd pwd
		read readarray readonly return set shift shopt source suspend test times trap true type typeset ulimit umask unalias
		unset wait`) {
		shellWords[w] = true
	}
}

// simpleCommand splits cmd into argv when the shell would run it as one
// program with those arguments, as they are.
func simpleCommand(cmd string) ([]string, bool) {
	words := strings.Fields(cmd)
	if len(words) == 0 || strings.ContainsAny(cmd, "\n\r\v\f") {
		return nil, false
	}
	for _, w := range words {
		if !plainWord.MatchString(w) {
			return nil, false
		}
	}
	first := words[0]
	if shellWords[first] || strings.Contains(first, "=") || strings.HasPrefix(first, "-") {
		return nil, false // a builtin, an assignment, an option
	}
	return words, true
}

// shellPlan is how to start a shell-string command: program, argv and
// environment. extra is the request's own variables (KEY=VALUE).
type shellPlan struct {
	path string
	argv []string
	env  []string
	fast bool // from the login cache: the usual login shell is the fallback
}

func (s *server) planShell(cmd string, extra []string, cwd string) (shellPlan, error) {
	login := func() (shellPlan, error) {
		env, err := buildEnv(extra)
		return shellPlan{path: "/bin/sh", argv: []string{"/bin/sh", "-lc", cmd}, env: env}, err
	}
	if len(extra) > 0 {
		return login()
	}
	base := s.loginEnv()
	if base == nil {
		return login()
	}
	env := append(slices.Clone(base), "PWD="+cwd)
	if argv, ok := simpleCommand(cmd); ok {
		if path, err := logins.lookPath(argv[0], env, cwd); err == nil {
			return shellPlan{path: path, argv: argv, env: env, fast: true}, nil
		}
	}
	return shellPlan{path: "/bin/sh", argv: []string{"/bin/sh", "-c", cmd}, env: env, fast: true}, nil
}
