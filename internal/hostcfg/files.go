package hostcfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Dirs are where host config files live: the user's home, the XDG config
// home, Codex's home and the project (a Git checkout) for project scopes.
type Dirs struct {
	Home, ConfigHome, CodexHome, Project string
}

// DirsFromEnv fills Dirs the way the hosts themselves find their files.
func DirsFromEnv(project string) Dirs {
	home, _ := os.UserHomeDir()
	d := Dirs{Home: home, ConfigHome: os.Getenv("XDG_CONFIG_HOME"), CodexHome: os.Getenv("CODEX_HOME"), Project: project}
	if d.ConfigHome == "" {
		d.ConfigHome = filepath.Join(home, ".config")
	}
	if d.CodexHome == "" {
		d.CodexHome = filepath.Join(home, ".codex")
	}
	return d
}

// File is one config file a host reads MCP servers from.
type File struct {
	Host  string   `json:"host"`
	Scope string   `json:"scope"` // "user" or "project"
	Path  string   `json:"path"`
	keys  []string // JSON: the path of the object holding the servers
}

func (f File) toml() bool { return f.Host == "codex" }

// Files returns the config files of host, the default scope first.
func Files(host string, d Dirs) ([]File, error) {
	var fs []File
	add := func(scope, path string, keys ...string) {
		if path != "" {
			fs = append(fs, File{Host: host, Scope: scope, Path: path, keys: keys})
		}
	}
	project := func(rel string) string {
		if d.Project == "" {
			return ""
		}
		return filepath.Join(d.Project, rel)
	}
	switch host {
	case "claude-code":
		add("project", project(".mcp.json"), "mcpServers")
		add("user", filepath.Join(d.Home, ".claude.json"), "mcpServers")
	case "claude-desktop":
		dir := filepath.Join(d.ConfigHome, "Claude")
		if runtime.GOOS == "darwin" {
			dir = filepath.Join(d.Home, "Library", "Application Support", "Claude")
		}
		add("user", filepath.Join(dir, "claude_desktop_config.json"), "mcpServers")
	case "cursor":
		add("user", filepath.Join(d.Home, ".cursor", "mcp.json"), "mcpServers")
		add("project", project(filepath.Join(".cursor", "mcp.json")), "mcpServers")
	case "opencode":
		add("user", filepath.Join(d.ConfigHome, "opencode", "opencode.json"), "mcp", "servers")
		add("project", project("opencode.json"), "mcp", "servers")
	case "codex":
		add("user", filepath.Join(d.CodexHome, "config.toml"))
	default:
		return nil, unknown(host, Hosts)
	}
	return fs, nil
}

// Finding is what host doctor found in one config file.
type Finding struct {
	File
	// State: "absent" (no file), "not_configured" (no pyro server in it),
	// "ok", or "broken" (Problems say why; `pyro host repair` fixes it).
	State    string   `json:"state"`
	Command  string   `json:"command,omitempty"`
	Args     []string `json:"args,omitempty"`
	URL      string   `json:"url,omitempty"`
	Problems []string `json:"problems"`
	Notes    []string `json:"notes"`
}

// CheckOptions say what a good pyro entry looks like.
type CheckOptions struct {
	Self string // this pyro binary
	// ServeArgs validates the arguments after `mcp serve` (profile, mode).
	ServeArgs func(args []string) error
}

// Check reads f and judges its pyro server entry.
func Check(f File, o CheckOptions) Finding {
	fd := Finding{File: f, Problems: []string{}, Notes: []string{}}
	b, err := os.ReadFile(f.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fd.State = "absent"
		return fd
	case err != nil:
		fd.State = "broken"
		fd.Problems = append(fd.Problems, "unreadable: "+err.Error())
		return fd
	}
	entry, found, err := readEntry(f, b)
	if err != nil {
		fd.State = "broken"
		fd.Problems = append(fd.Problems, "not valid "+format(f)+": "+err.Error())
		return fd
	}
	if !found {
		fd.State = "not_configured"
		return fd
	}
	fd.judge(entry, o)
	fd.State = "ok"
	if len(fd.Problems) > 0 {
		fd.State = "broken"
	}
	return fd
}

func format(f File) string {
	if f.toml() {
		return "TOML"
	}
	return "JSON"
}

func (fd *Finding) judge(e map[string]any, o CheckOptions) {
	if u, ok := e["url"].(string); ok {
		fd.URL = u
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			fd.Problems = append(fd.Problems, fmt.Sprintf("url %q is not an http(s) address", u))
		}
		return
	}
	switch c := e["command"].(type) { // OpenCode: command is the whole argv
	case string:
		fd.Command = c
		fd.Args = strings_(e["args"])
	case []any:
		argv := strings_(c)
		if len(argv) > 0 {
			fd.Command, fd.Args = argv[0], argv[1:]
		}
	}
	if fd.Command == "" {
		fd.Problems = append(fd.Problems, "the pyro entry has neither a command nor a url")
		return
	}
	if st, err := os.Stat(fd.Command); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		fd.Problems = append(fd.Problems, fmt.Sprintf("command %s is not an executable file (pyro moved or was removed)", fd.Command))
	} else if o.Self != "" && !sameFile(fd.Command, o.Self) {
		fd.Notes = append(fd.Notes, fmt.Sprintf("runs another pyro binary (%s; this one is %s)", fd.Command, o.Self))
	}
	if len(fd.Args) < 2 || fd.Args[0] != "mcp" || fd.Args[1] != "serve" {
		fd.Problems = append(fd.Problems, fmt.Sprintf("args %q do not start with \"mcp serve\"", fd.Args))
	} else if o.ServeArgs != nil {
		if err := o.ServeArgs(fd.Args[2:]); err != nil {
			fd.Problems = append(fd.Problems, "mcp serve arguments: "+err.Error())
		}
	}
	if fd.toml() {
		if t, ok := e["tool_timeout_sec"].(int64); !ok || t < 300 {
			fd.Problems = append(fd.Problems, fmt.Sprintf("tool_timeout_sec is %v (Codex's default is 60 s): longer commands fail; repair sets %d", e["tool_timeout_sec"], ToolTimeoutSeconds))
		}
	}
}

func strings_(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// readEntry returns the "pyro" server entry of a config file.
func readEntry(f File, b []byte) (map[string]any, bool, error) {
	if f.toml() {
		var v struct {
			MCPServers map[string]map[string]any `toml:"mcp_servers"`
		}
		if _, err := toml.Decode(string(b), &v); err != nil {
			return nil, false, err
		}
		e, ok := v.MCPServers["pyro"]
		return e, ok, nil
	}
	var v any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, false, err
		}
	}
	for _, k := range f.keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	m, _ := v.(map[string]any)
	e, ok := m["pyro"].(map[string]any)
	return e, ok, nil
}

// Repair writes s as the "pyro" server into f, keeping everything else in
// the file (JSON key order included; TOML text outside pyro's table
// untouched). The previous file is kept beside it as PATH.pyro-bak; the new
// one replaces it atomically with the same permissions. It returns the
// backup's path ("" when there was no file).
func Repair(f File, s Server) (backup string, err error) {
	old, err := os.ReadFile(f.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "reading %s", f.Path)
	}
	var updated []byte
	if f.toml() {
		updated, err = repairTOML(old, s)
	} else {
		updated, err = repairJSON(f, old, s)
	}
	if err != nil {
		return "", errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"%s cannot be edited safely (fix it by hand with `pyro host print-config %s`)", f.Path, f.Host)
	}
	mode := os.FileMode(0o600)
	if st, err := os.Stat(f.Path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return "", err
	}
	if old != nil {
		backup = f.Path + ".pyro-bak"
		if err := os.WriteFile(backup, old, mode); err != nil {
			return "", err
		}
	}
	return backup, writeAtomic(f.Path, updated, mode)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func repairJSON(f File, old []byte, s Server) ([]byte, error) {
	gen, err := Config(f.Host, s)
	if err != nil {
		return nil, err
	}
	want, _, err := readEntry(f, gen)
	if err != nil {
		return nil, err
	}
	entry, _ := json.Marshal(want)
	if len(bytes.TrimSpace(old)) == 0 {
		old = []byte("{}")
	}
	root, err := setPath(old, append(slices.Clone(f.keys), "pyro"), entry)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, root, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// setPath sets keys[len-1] in the object at keys[:len-1] of doc to value,
// making the objects on the way, keeping every other key where it was.
func setPath(doc []byte, keys []string, value json.RawMessage) (json.RawMessage, error) {
	o, err := parseObject(doc)
	if err != nil {
		return nil, err
	}
	if len(keys) == 1 {
		o.set(keys[0], value)
		return o.marshal(), nil
	}
	child, ok := o.vals[keys[0]]
	if !ok || bytes.Equal(bytes.TrimSpace(child), []byte("null")) {
		child = json.RawMessage("{}")
	}
	v, err := setPath(child, keys[1:], value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keys[0], err)
	}
	o.set(keys[0], v)
	return o.marshal(), nil
}

// object is a JSON object that keeps its keys' order.
type object struct {
	keys []string
	vals map[string]json.RawMessage
}

func parseObject(b []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	o := &object{vals: map[string]json.RawMessage{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o.set(t.(string), v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return o, nil
}

func (o *object) set(k string, v json.RawMessage) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *object) marshal() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(o.vals[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// pyroTable matches the header of pyro's Codex table or one of its
// subtables ([mcp_servers.pyro], [mcp_servers.pyro.env], quoted forms).
var pyroTable = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*\[\s*mcp_servers\s*\.\s*("pyro"|'pyro'|pyro)\s*(\.|\])`)
})

var anyTable = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*\[`) })

// repairTOML drops pyro's table(s) from a Codex config and appends the new
// one; the result must parse and hold exactly the new entry, else nothing
// is written (an inline or dotted-key pyro entry cannot be edited as text).
func repairTOML(old []byte, s Server) ([]byte, error) {
	var kept []string
	skipping := false
	for _, line := range strings.SplitAfter(string(old), "\n") {
		switch {
		case pyroTable().MatchString(line):
			skipping = true
			continue
		case anyTable().MatchString(line):
			skipping = false
		}
		if !skipping {
			kept = append(kept, line)
		}
	}
	text := strings.Join(kept, "")
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	gen, err := Config("codex", s)
	if err != nil {
		return nil, err
	}
	var table []string
	for _, line := range strings.Split(string(gen), "\n") {
		if strings.TrimSpace(line) != "[mcp_servers]" {
			table = append(table, strings.TrimLeft(line, " "))
		}
	}
	if text != "" {
		text += "\n"
	}
	text += strings.TrimSpace(strings.Join(table, "\n")) + "\n"
	got, found, err := readEntry(File{Host: "codex"}, []byte(text))
	if err != nil {
		return nil, err
	}
	want, _, _ := readEntry(File{Host: "codex"}, gen)
	if !found || fmt.Sprint(got) != fmt.Sprint(want) {
		return nil, fmt.Errorf("its pyro entry is not a [mcp_servers.pyro] table")
	}
	return []byte(text), nil
}
