package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestValidateName(t *testing.T) {
	valid := []string{
		"A", "a", "_", "_x", "API_TOKEN", "token2", "x_1_y", "ABCdef_123",
		strings.Repeat("a", 64),
		"_" + strings.Repeat("9", 63),
	}
	for _, name := range valid {
		if err := ValidateName("secrets", name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	invalid := []string{
		"", "1A", "9", "0_TOKEN", "A-B", "A B", "A.B", "A=B", "é", "A\n", "\nA",
		" A", "A ", "A$", "tök",
		strings.Repeat("a", 65),
		strings.Repeat("_", 100),
	}
	for _, name := range invalid {
		err := ValidateName("secret_env", name)
		if err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", name)
			continue
		}
		if got := errdefs.CodeOf(err); got != errdefs.CodeInvalidArgument {
			t.Errorf("ValidateName(%q): code %q, want %q", name, got, errdefs.CodeInvalidArgument)
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ValidateName(%q): %v is not ErrInvalidArgument", name, err)
		}
		if !strings.HasPrefix(err.Error(), "secret_env: ") {
			t.Errorf("ValidateName(%q): message %q does not name the field", name, err)
		}
	}
}

func TestNewSetNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"TOKEN", true},
		{"_private", true},
		{"a1", true},
		{strings.Repeat("N", 64), true},
		{strings.Repeat("N", 65), false},
		{"1TOKEN", false},
		{"", false},
		{"MY-TOKEN", false},
		{"MY TOKEN", false},
	} {
		_, err := NewSet([]Secret{{Name: tc.name, Value: "value-1234"}})
		if tc.ok && err != nil {
			t.Errorf("NewSet with name %q: %v", tc.name, err)
		}
		if !tc.ok {
			if err == nil {
				t.Errorf("NewSet with name %q: no error", tc.name)
			} else if errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
				t.Errorf("NewSet with name %q: code %q, want invalid_argument", tc.name, errdefs.CodeOf(err))
			}
		}
	}
}

func TestNewSetDuplicate(t *testing.T) {
	_, err := NewSet([]Secret{
		{Name: "A", Value: "first-value"},
		{Name: "B", Value: "other-value"},
		{Name: "A", Value: "second-value"},
	})
	if err == nil {
		t.Fatal("NewSet accepted a name given twice")
	}
	if got := errdefs.CodeOf(err); got != CodeSecretExists {
		t.Errorf("code %q, want %q", got, CodeSecretExists)
	}
	if strings.Contains(err.Error(), "first-value") || strings.Contains(err.Error(), "second-value") {
		t.Errorf("error message shows a value: %v", err)
	}
	// Names differ by case: not duplicates.
	if _, err := NewSet([]Secret{{Name: "a", Value: "1234"}, {Name: "A", Value: "1234"}}); err != nil {
		t.Errorf("names differing by case: %v", err)
	}
}

func TestNewSetValueLength(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{
		{0, false},
		{1, false},
		{MinValueBytes - 1, false},
		{MinValueBytes, true},
		{MinValueBytes + 1, true},
		{MaxValueBytes - 1, true},
		{MaxValueBytes, true},
		{MaxValueBytes + 1, false},
		{2 * MaxValueBytes, false},
	} {
		s, err := NewSet([]Secret{{Name: "S", Value: strings.Repeat("x", tc.n)}})
		switch {
		case tc.ok && err != nil:
			t.Errorf("value of %d bytes: %v", tc.n, err)
		case tc.ok && len(s) != 1:
			t.Errorf("value of %d bytes: set has %d secrets", tc.n, len(s))
		case tc.ok && len(s[0].Value) != tc.n:
			t.Errorf("value of %d bytes: stored %d bytes", tc.n, len(s[0].Value))
		case !tc.ok && err == nil:
			t.Errorf("value of %d bytes: accepted", tc.n)
		case !tc.ok && errdefs.CodeOf(err) != errdefs.CodeInvalidArgument:
			t.Errorf("value of %d bytes: code %q", tc.n, errdefs.CodeOf(err))
		case !tc.ok && tc.n >= 3 && strings.Contains(err.Error(), strings.Repeat("x", tc.n)):
			t.Errorf("value of %d bytes: message shows the value", tc.n)
		}
	}
}

func TestNewSetCount(t *testing.T) {
	mk := func(n int) []Secret {
		in := make([]Secret, n)
		for i := range in {
			in[i] = Secret{Name: fmt.Sprintf("S%03d", i), Value: fmt.Sprintf("value-%03d", i)}
		}
		return in
	}
	s, err := NewSet(mk(MaxSecrets))
	if err != nil {
		t.Fatalf("%d secrets: %v", MaxSecrets, err)
	}
	if len(s) != MaxSecrets {
		t.Fatalf("%d secrets: got %d", MaxSecrets, len(s))
	}
	_, err = NewSet(mk(MaxSecrets + 1))
	if err == nil {
		t.Fatalf("%d secrets accepted", MaxSecrets+1)
	}
	if errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
		t.Errorf("too many secrets: code %q", errdefs.CodeOf(err))
	}
}

func TestNewSetSortsAndDefaults(t *testing.T) {
	in := []Secret{
		{Name: "zeta", Value: "zzzz-value"},
		{Name: "ALPHA", Value: "aaaa-value", Source: SourceFile},
		{Name: "_under", Value: "uuuu-value"},
		{Name: "Beta", Value: "bbbb-value"},
	}
	orig := append([]Secret(nil), in...)
	s, err := NewSet(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Set{
		{Name: "ALPHA", Value: "aaaa-value", Source: SourceFile},
		{Name: "Beta", Value: "bbbb-value", Source: SourceValue},
		{Name: "_under", Value: "uuuu-value", Source: SourceValue},
		{Name: "zeta", Value: "zzzz-value", Source: SourceValue},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("NewSet =\n%+v\nwant\n%+v", s, want)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Errorf("NewSet changed its input: %+v", in)
	}
}

func TestNewSetEmpty(t *testing.T) {
	for _, in := range [][]Secret{nil, {}} {
		s, err := NewSet(in)
		if err != nil || len(s) != 0 {
			t.Errorf("NewSet(%v) = %v, %v; want empty", in, s, err)
		}
		if r := s.Redactor(); r != nil {
			t.Errorf("empty set has a redactor")
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	content := "tok3n-value\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ReadFile("TOKEN", p)
	if err != nil {
		t.Fatal(err)
	}
	want := Secret{Name: "TOKEN", Value: content, Source: SourceFile}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ReadFile = %+v, want %+v", s, want)
	}

	// Binary content and an exact-size file are read byte for byte.
	bin := []byte{0, 1, 2, 0xff, '\r', '\n', 0x80}
	pb := filepath.Join(dir, "bin")
	if err := os.WriteFile(pb, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = ReadFile("BIN", pb)
	if err != nil || s.Value != string(bin) {
		t.Errorf("ReadFile(binary) = %q, %v; want %q", s.Value, err, bin)
	}
	exact := strings.Repeat("k", MaxValueBytes)
	pe := filepath.Join(dir, "exact")
	if err := os.WriteFile(pe, []byte(exact), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = ReadFile("EXACT", pe)
	if err != nil || s.Value != exact {
		t.Fatalf("ReadFile(exact max) = %d bytes, %v", len(s.Value), err)
	}
	if _, err := NewSet([]Secret{s}); err != nil {
		t.Errorf("NewSet refused a file of exactly MaxValueBytes: %v", err)
	}
}

func TestReadFileMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope")
	_, err := ReadFile("TOKEN", p)
	if err == nil {
		t.Fatal("ReadFile of a missing file: no error")
	}
	if got := errdefs.CodeOf(err); got != errdefs.CodeInvalidArgument {
		t.Errorf("code %q, want %q", got, errdefs.CodeInvalidArgument)
	}
	var e *errdefs.Error
	if !errors.As(err, &e) {
		t.Errorf("error %T is not an *errdefs.Error", err)
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v lost its class or cause", err)
	}
	if !strings.Contains(err.Error(), "TOKEN") {
		t.Errorf("error %q does not name the secret", err)
	}
}

func TestReadFileDirectory(t *testing.T) {
	_, err := ReadFile("DIR", t.TempDir())
	if err == nil {
		t.Fatal("ReadFile of a directory: no error")
	}
	if got := errdefs.CodeOf(err); got != errdefs.CodeInvalidArgument {
		t.Errorf("code %q, want %q", got, errdefs.CodeInvalidArgument)
	}
}

func TestReadFileTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, []byte(strings.Repeat("b", 3*MaxValueBytes)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ReadFile("BIG", p)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Value) != MaxValueBytes+1 {
		t.Fatalf("ReadFile of a large file gave %d bytes, want %d", len(s.Value), MaxValueBytes+1)
	}
	_, err = NewSet([]Secret{s})
	if err == nil {
		t.Fatal("NewSet accepted a value read from a too large file")
	}
	if errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
		t.Errorf("code %q, want invalid_argument", errdefs.CodeOf(err))
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secrets.json")
	set, err := NewSet([]Secret{
		{Name: "B", Value: "line1-very-long\nline2-very-long\n", Source: SourceFile},
		{Name: "A", Value: "quote\"and\\backslash\u00e9\x00"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(p, set); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("mode %o, want 600", m)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, set) {
		t.Errorf("Load = %+v, want %+v", got, set)
	}
	// Nothing besides the file is left behind in the directory.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1: %v", len(ents), ents)
	}

	// Saving again replaces the content.
	set2 := set[:1]
	if err := Save(p, set2); err != nil {
		t.Fatal(err)
	}
	got, err = Load(p)
	if err != nil || !reflect.DeepEqual(got, set2) {
		t.Errorf("Load after second Save = %+v, %v; want %+v", got, err, set2)
	}
}

func TestSaveLoadBinary(t *testing.T) {
	// A key file need not be UTF-8: its bytes must come back unchanged.
	dir := t.TempDir()
	kf := filepath.Join(dir, "key.der")
	raw := []byte{0x30, 0x82, 0x01, 0xff, 0xfe, 0x80, 0xc3, 0x28, 'a', '\n', 0xed, 0xa0, 0x80}
	if err := os.WriteFile(kf, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ReadFile("KEY", kf)
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewSet([]Secret{s, {Name: "TEXT", Value: "plain-text"}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "secrets.json")
	if err := Save(p, set); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, set) {
		t.Errorf("Load = %q, want %q", got, set)
	}
	if len(got) == 2 && got[0].Value != string(raw) {
		t.Errorf("binary value came back as % x, want % x", got[0].Value, raw)
	}
}

func TestSaveTightensExistingMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(p, []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := NewSet([]Secret{{Name: "A", Value: "value-1234"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(p, set); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("Save over a 0644 file left mode %o, want 600", m)
	}
}

func TestSaveEmptyLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secrets.json")
	if err := Save(p, nil); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil || len(got) != 0 {
		t.Errorf("Load of an empty saved set = %v, %v", got, err)
	}
}

func TestLoadMissing(t *testing.T) {
	got, err := Load(filepath.Join(t.TempDir(), "missing.json"))
	if err != nil {
		t.Errorf("Load of a missing file: %v", err)
	}
	if got != nil {
		t.Errorf("Load of a missing file = %v, want nil", got)
	}
	if r := got.Redactor(); r != nil {
		t.Errorf("redactor of a missing set is not nil")
	}
}

func TestLoadDamaged(t *testing.T) {
	for _, content := range []string{"{", "not json", `{"name":"A"}`, `[{"name":1}]`} {
		p := filepath.Join(t.TempDir(), "secrets.json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Load(p)
		if err == nil {
			t.Errorf("Load(%q) = %v, nil; want an error", content, got)
			continue
		}
		if got != nil {
			t.Errorf("Load(%q) returned a set with its error: %v", content, got)
		}
		if errdefs.CodeOf(err) != errdefs.CodeInternal {
			t.Errorf("Load(%q): code %q, want internal", content, errdefs.CodeOf(err))
		}
	}
}

func TestLoadUnreadable(t *testing.T) {
	// A directory in place of the file is an error, not an empty set.
	_, err := Load(t.TempDir())
	if err == nil {
		t.Error("Load of a directory: no error")
	}
}

func mustSet(t testing.TB, kv ...string) Set {
	t.Helper()
	var in []Secret
	for i := 0; i+1 < len(kv); i += 2 {
		in = append(in, Secret{Name: kv[i], Value: kv[i+1]})
	}
	s, err := NewSet(in)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEnv(t *testing.T) {
	set := mustSet(t, "API_TOKEN", "tok-1234", "DB_PASS", "pw-5678", "OTHER", "other-999")
	got, err := set.Env(map[string]string{"API_TOKEN": "GITHUB_TOKEN", "DB_PASS": ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DB_PASS=pw-5678", "GITHUB_TOKEN=tok-1234"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Env = %q, want %q", got, want)
	}

	// One secret in two variables is fine.
	got, err = set.Env(map[string]string{"API_TOKEN": ""})
	if err != nil || !reflect.DeepEqual(got, []string{"API_TOKEN=tok-1234"}) {
		t.Errorf("Env(same name) = %q, %v", got, err)
	}
}

func TestEnvSortedByVariable(t *testing.T) {
	// Sorted by variable name, not by the NAME=VALUE string ('1' < '=' < 'B').
	set := mustSet(t, "S1", "value-one", "S2", "value-two", "S3", "value-three", "S4", "value-four")
	got, err := set.Env(map[string]string{"S1": "A1", "S2": "A", "S3": "AB", "S4": "A_"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=value-two", "A1=value-one", "AB=value-three", "A_=value-four"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Env = %q, want %q", got, want)
	}
	// Stable over runs (map order is random).
	for range 20 {
		again, _ := set.Env(map[string]string{"S1": "A1", "S2": "A", "S3": "AB", "S4": "A_"})
		if !reflect.DeepEqual(again, want) {
			t.Fatalf("Env = %q on another run, want %q", again, want)
		}
	}
}

func TestEnvErrors(t *testing.T) {
	set := mustSet(t, "A", "value-aaaa", "B", "value-bbbb")
	for _, tc := range []struct {
		name    string
		mapping map[string]string
		code    string
		class   error
	}{
		{"unknown secret", map[string]string{"MISSING": "X"}, CodeSecretNotFound, errdefs.ErrNotFound},
		{"unknown secret, own name", map[string]string{"MISSING": ""}, CodeSecretNotFound, errdefs.ErrNotFound},
		{"bad variable", map[string]string{"A": "1BAD"}, errdefs.CodeInvalidArgument, errdefs.ErrInvalidArgument},
		{"bad variable dash", map[string]string{"A": "MY-VAR"}, errdefs.CodeInvalidArgument, errdefs.ErrInvalidArgument},
		{"variable with =", map[string]string{"A": "X=Y"}, errdefs.CodeInvalidArgument, errdefs.ErrInvalidArgument},
		{"two secrets one variable", map[string]string{"A": "X", "B": "X"}, errdefs.CodeInvalidArgument, errdefs.ErrInvalidArgument},
		{"two secrets one variable, implicit", map[string]string{"A": "", "B": "A"}, errdefs.CodeInvalidArgument, errdefs.ErrInvalidArgument},
	} {
		got, err := set.Env(tc.mapping)
		if err == nil {
			t.Errorf("%s: Env = %q, want an error", tc.name, got)
			continue
		}
		if got != nil {
			t.Errorf("%s: Env returned %q with its error", tc.name, got)
		}
		if c := errdefs.CodeOf(err); c != tc.code {
			t.Errorf("%s: code %q, want %q (%v)", tc.name, c, tc.code, err)
		}
		if !errors.Is(err, tc.class) {
			t.Errorf("%s: %v is not %v", tc.name, err, tc.class)
		}
		if strings.Contains(err.Error(), "value-aaaa") || strings.Contains(err.Error(), "value-bbbb") {
			t.Errorf("%s: error shows a value: %v", tc.name, err)
		}
	}
	// No secrets at all: any mapping names an unknown secret.
	var empty Set
	if _, err := empty.Env(map[string]string{"A": ""}); errdefs.CodeOf(err) != CodeSecretNotFound {
		t.Errorf("Env on an empty set: %v", err)
	}
}

func TestEnvEmptyMapping(t *testing.T) {
	set := mustSet(t, "A", "value-aaaa")
	for _, m := range []map[string]string{nil, {}} {
		got, err := set.Env(m)
		if err != nil || got != nil {
			t.Errorf("Env(%v) = %q, %v; want nil, nil", m, got, err)
		}
	}
}

func TestInfos(t *testing.T) {
	set := mustSet(t, "B_TOKEN", "bbbb-secret", "A_TOKEN", "aaaa-secret")
	set[0].Source = SourceFile
	infos := set.Infos()
	want := []Info{{Name: "A_TOKEN", Source: SourceFile}, {Name: "B_TOKEN", Source: SourceValue}}
	if !reflect.DeepEqual(infos, want) {
		t.Errorf("Infos = %+v, want %+v", infos, want)
	}
	s := fmt.Sprintf("%+v %#v", infos, infos)
	for _, v := range []string{"aaaa-secret", "bbbb-secret"} {
		if strings.Contains(s, v) {
			t.Errorf("Infos show value %q: %s", v, s)
		}
	}
	// Name, Source, and a brokered secret's hosts and placeholder.
	if n := reflect.TypeFor[Info]().NumField(); n != 4 {
		t.Errorf("Info has %d fields; a new one must not carry a value", n)
	}
	if got := Set(nil).Infos(); len(got) != 0 {
		t.Errorf("Infos of an empty set = %v", got)
	}
}

func TestSetRedactor(t *testing.T) {
	set := mustSet(t, "A", "alpha-secret", "B", "beta-secret")
	r := set.Redactor()
	if got := r.String("x alpha-secret y beta-secret z"); got != "x [REDACTED] y [REDACTED] z" {
		t.Errorf("Redactor().String = %q", got)
	}
}

// A brokered secret stays on the host: it is not installed, calls that name
// it get its placeholder (fresh per set, unguessable), and the placeholder
// and hosts survive Save and Load.
func TestBrokeredSecret(t *testing.T) {
	set, err := NewSet([]Secret{
		{Name: "GH", Value: "ghp_value-1234", BrokerHosts: []string{"api.github.com"}},
		{Name: "PLAIN", Value: "plain-value"},
	})
	if err != nil {
		t.Fatal(err)
	}
	gh := set[0]
	if !gh.Brokered() || !strings.HasPrefix(gh.Placeholder, PlaceholderPrefix) || len(gh.Placeholder) != len(PlaceholderPrefix)+32 {
		t.Fatalf("placeholder %q", gh.Placeholder)
	}
	again, _ := NewSet([]Secret{{Name: "GH", Value: "ghp_value-1234", BrokerHosts: []string{"api.github.com"}}})
	if again[0].Placeholder == gh.Placeholder {
		t.Error("two sets got the same placeholder")
	}
	if in := set.Installed(); len(in) != 1 || in[0].Name != "PLAIN" {
		t.Errorf("installed %+v", in)
	}
	if b := set.Brokered(); len(b) != 1 || b[0].Name != "GH" {
		t.Errorf("brokered %+v", b)
	}
	env, err := set.Env(map[string]string{"GH": "GITHUB_TOKEN", "PLAIN": ""})
	if err != nil || !reflect.DeepEqual(env, []string{"GITHUB_TOKEN=" + gh.Placeholder, "PLAIN=plain-value"}) {
		t.Errorf("env %v %v", env, err)
	}
	infos := fmt.Sprintf("%+v", set.Infos())
	if strings.Contains(infos, "ghp_value") || !strings.Contains(infos, gh.Placeholder) || !strings.Contains(infos, "api.github.com") {
		t.Errorf("infos %s", infos)
	}
	p := filepath.Join(t.TempDir(), "secrets.json")
	if err := Save(p, set); err != nil {
		t.Fatal(err)
	}
	back, err := Load(p)
	if err != nil || !reflect.DeepEqual(back, set) {
		t.Errorf("load %+v %v, want %+v", back, err, set)
	}
}
