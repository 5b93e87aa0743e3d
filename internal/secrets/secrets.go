// Package secrets holds a workspace's secrets on the host and hides their
// values from everything pyro shows: command output, shell output, service
// logs, file reads, diffs, exports and error messages.
//
// Redaction guards against accidental disclosure (a token echoed by a build
// script, a config file read back). It is not a barrier against a guest
// that transforms a value (base64, reversed) before printing it: the guest
// holds the values by design.
package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/renameio/v2"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// Limits.
const (
	MaxSecrets    = 64
	MaxValueBytes = 64 << 10
	MinValueBytes = 4 // shorter values would turn ordinary output into [REDACTED]
)

// Stable error codes.
const (
	CodeSecretNotFound = errdefs.CodeSecretNotFound
	CodeSecretExists   = errdefs.CodeSecretExists
)

// GuestDir is where the guest sees one file per secret (tmpfs, owner-only).
const GuestDir = "/run/pyro-secrets"

// Sources of a secret's value.
const (
	SourceValue = "value"
	SourceFile  = "file"
)

var namePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`) })

// Secret is one named value.
type Secret struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"` // SourceValue or SourceFile
	// BrokerHosts, when set, make the secret brokered: it never enters the
	// guest, which gets Placeholder instead, and the egress point puts
	// Value into request headers sent to these hosts only.
	BrokerHosts []string `json:"broker_hosts,omitempty"`
	Placeholder string   `json:"placeholder,omitempty"`
}

// Brokered reports whether the secret stays on the host.
func (s Secret) Brokered() bool { return len(s.BrokerHosts) > 0 }

// Info is what pyro shows about a secret: never its value.
type Info struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	// BrokerHosts and Placeholder, of a brokered secret: what the guest
	// sees instead of the value, and the hosts it is replaced for.
	BrokerHosts []string `json:"broker_hosts,omitempty"`
	Placeholder string   `json:"placeholder,omitempty"`
}

// PlaceholderPrefix starts every placeholder of a brokered secret; 32
// random hex digits follow, so no guest or remote party can guess one.
const PlaceholderPrefix = "pyro_brokered_"

// NewPlaceholder makes a fresh placeholder: letters, digits and '_' only,
// so it survives headers, URLs and base64 (Basic auth) unchanged.
func NewPlaceholder() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return PlaceholderPrefix + hex.EncodeToString(b)
}

// Set is a workspace's secrets, sorted by name.
type Set []Secret

// ValidateName checks a secret (or environment variable) name.
func ValidateName(field, name string) error {
	if !namePattern().MatchString(name) {
		return errdefs.InvalidArgument(field, "%q is not a valid name: use 1-64 letters, digits or '_', not starting with a digit", name)
	}
	return nil
}

// NewSet validates secrets and sorts them by name.
func NewSet(in []Secret) (Set, error) {
	if len(in) > MaxSecrets {
		return nil, errdefs.InvalidArgument("secrets", "%d secrets given, at most %d are allowed", len(in), MaxSecrets)
	}
	seen := map[string]bool{}
	out := make(Set, 0, len(in))
	for _, s := range in {
		if err := ValidateName("secrets", s.Name); err != nil {
			return nil, err
		}
		if seen[s.Name] {
			return nil, errdefs.New(errdefs.ErrInvalidArgument, CodeSecretExists, "secret %s is given twice: give each name once", s.Name)
		}
		seen[s.Name] = true
		// Counted without surrounding white space: that is what redaction hides.
		if n := len(strings.TrimSpace(s.Value)); n < MinValueBytes || len(s.Value) > MaxValueBytes {
			return nil, errdefs.InvalidArgument("secrets", "the value of secret %s must be %d bytes to %d KiB long, not counting surrounding white space (it has %d bytes)", s.Name, MinValueBytes, MaxValueBytes>>10, n)
		}
		if s.Source == "" {
			s.Source = SourceValue
		}
		if s.Brokered() && s.Placeholder == "" {
			s.Placeholder = NewPlaceholder()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ReadFile reads a secret's value from a host file, as it is (a trailing
// newline stays: PEM keys need it; redaction also catches the value without it).
func ReadFile(name, path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "cannot read the file of secret %s", name)
	}
	defer f.Close()
	return Read(name, f)
}

// Read reads a secret's value from r (an opened secret file).
func Read(name string, r io.Reader) (Secret, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxValueBytes+1))
	if err != nil {
		return Secret{}, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "cannot read the file of secret %s", name)
	}
	return Secret{Name: name, Value: string(b), Source: SourceFile}, nil
}

// Infos lists the secrets without their values.
func (s Set) Infos() []Info {
	out := make([]Info, len(s))
	for i, x := range s {
		out[i] = Info{Name: x.Name, Source: x.Source, BrokerHosts: x.BrokerHosts, Placeholder: x.Placeholder}
	}
	return out
}

// Installed is the part of the set that enters the guest (files under
// GuestDir): every secret that is not brokered.
func (s Set) Installed() Set {
	var out Set
	for _, x := range s {
		if !x.Brokered() {
			out = append(out, x)
		}
	}
	return out
}

// Brokered is the part of the set that stays on the host.
func (s Set) Brokered() Set {
	var out Set
	for _, x := range s {
		if x.Brokered() {
			out = append(out, x)
		}
	}
	return out
}

// Env resolves a secret_env mapping (secret name -> environment variable
// name; an empty variable name means the secret's own name) into NAME=VALUE
// entries, sorted by variable name.
func (s Set) Env(mapping map[string]string) ([]string, error) {
	if len(mapping) == 0 {
		return nil, nil
	}
	byName := map[string]string{}
	for _, x := range s {
		byName[x.Name] = x.Value
		if x.Brokered() { // the guest never gets the value
			byName[x.Name] = x.Placeholder
		}
	}
	names := make([]string, 0, len(mapping))
	for name := range mapping {
		names = append(names, name)
	}
	sort.Strings(names) // the same error whatever the map order
	vars := map[string]string{}
	for _, name := range names {
		envName := mapping[name]
		if envName == "" {
			envName = name
		}
		if err := ValidateName("secret_env", envName); err != nil {
			return nil, err
		}
		v, ok := byName[name]
		if !ok {
			return nil, errdefs.New(errdefs.ErrNotFound, CodeSecretNotFound,
				"the workspace has no secret %q: secrets are set at create time", name).
				WithNext("; %s to list their names", "pyro workspace status ID", "workspace_status")
		}
		if _, dup := vars[envName]; dup {
			return nil, errdefs.InvalidArgument("secret_env", "environment variable %s is set by two secrets", envName)
		}
		vars[envName] = v
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	// Sort the names, not the NAME=VALUE strings: "A1=x" sorts before "A=y".
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + vars[k]
	}
	return out, nil
}

// diskSecret is a Secret as Save writes it: a value that is not valid UTF-8
// (a binary key file) goes in base64, which JSON strings could not carry.
type diskSecret struct {
	Name        string   `json:"name"`
	Value       string   `json:"value"`
	ValueBase64 []byte   `json:"value_base64,omitempty"`
	Source      string   `json:"source"`
	BrokerHosts []string `json:"broker_hosts,omitempty"`
	Placeholder string   `json:"placeholder,omitempty"`
}

// Save writes the set, readable by the owner only (also when the file
// already exists with a wider mode).
func Save(path string, s Set) error {
	disk := make([]diskSecret, len(s))
	for i, x := range s {
		disk[i] = diskSecret{Name: x.Name, Value: x.Value, Source: x.Source, BrokerHosts: x.BrokerHosts, Placeholder: x.Placeholder}
		if !utf8.ValidString(x.Value) {
			disk[i].Value, disk[i].ValueBase64 = "", []byte(x.Value)
		}
	}
	b, err := json.Marshal(disk)
	if err != nil {
		return err
	}
	// Not fsutil.WriteFileAtomic: it keeps the mode of an existing file.
	dir := filepath.Dir(path)
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(0o600))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return fsutil.SyncDir(dir)
}

// Load reads a set written by Save; a missing file is an empty set.
func Load(path string) (Set, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var disk []diskSecret
	if err := json.Unmarshal(b, &disk); err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "the secrets file %s is damaged", path)
	}
	if disk == nil {
		return nil, nil
	}
	s := make(Set, len(disk))
	for i, x := range disk {
		s[i] = Secret{Name: x.Name, Value: x.Value, Source: x.Source, BrokerHosts: x.BrokerHosts, Placeholder: x.Placeholder}
		if x.ValueBase64 != nil {
			s[i].Value = string(x.ValueBase64)
		}
	}
	return s, nil
}

// Redactor returns the redactor for the set's values.
func (s Set) Redactor() *Redactor {
	vals := make([]string, len(s))
	for i, x := range s {
		vals[i] = x.Value
	}
	return NewRedactor(vals...)
}
