package env

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestValidName(t *testing.T) {
	good := []string{"debian:12", "debian:12-base", "debian:12-build", "alpine", "a.b_c-d:1.2"}
	bad := []string{"", "../etc", "debian/12", "debian:12/../../x", "Debian:12", "debian:", ":12",
		"debian::12", "debian:12:x", "-debian", "debian..12", "debian 12", "debian:12\n",
		strings.Repeat("a", 65), ".", "..", "a:b/c", "debian:12\x00"}
	for _, n := range good {
		if !validName(n) {
			t.Errorf("validName(%q) = false", n)
		}
	}
	for _, n := range bad {
		if validName(n) {
			t.Errorf("validName(%q) = true", n)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	_, err := lookup("foo")
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing || !errdefs.IsNotFound(err) {
		t.Fatalf("unknown name: code %q, err %v", errdefs.CodeOf(err), err)
	}
	if want := `unknown environment "foo": run "pyro env list" to see the environments`; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	_, err = lookup("../../etc/passwd")
	if errdefs.CodeOf(err) != errdefs.CodeInvalidArgument || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("path trick: code %q, err %v", errdefs.CodeOf(err), err)
	}
	for _, e := range catalog {
		if got, err := lookup(e.Name); err != nil || got.Name != e.Name {
			t.Fatalf("lookup(%q) = %v, %v", e.Name, got, err)
		}
	}
}

func TestCatalogSlugsAndRecipes(t *testing.T) {
	slugs := map[string]bool{}
	recipes := map[string]bool{}
	for _, e := range catalog {
		if !validName(e.Name) {
			t.Errorf("catalog name %q is not valid", e.Name)
		}
		s := slug(e.Name)
		if slugs[s] || strings.ContainsAny(s, "/:") {
			t.Errorf("slug %q of %q is duplicate or unsafe", s, e.Name)
		}
		slugs[s] = true
		if back, ok := entryForSlug(s); !ok || back.Name != e.Name {
			t.Errorf("entryForSlug(%q) = %v", s, back.Name)
		}
		h := e.recipeHash()
		if len(h) != 12 || recipes[h] || h != e.recipeHash() {
			t.Errorf("recipe hash %q of %q is not stable and unique", h, e.Name)
		}
		recipes[h] = true
	}
	if slug("debian:12-base") != "debian-12-base" {
		t.Fatal(slug("debian:12-base"))
	}
}

func TestListCatalog(t *testing.T) {
	s := newTestStore(t, Options{})
	fakeInstall(t, s, "debian:12", "12.20250101.aaaaaaaa", agentA, testNow())
	infos, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(catalog) {
		t.Fatalf("got %d entries", len(infos))
	}
	byName := map[string]Info{}
	for _, i := range infos {
		byName[i.Name] = i
	}
	d := byName["debian:12"]
	if !d.Installed || d.Version != "12.20250101.aaaaaaaa" || d.RootfsSize != 8192 {
		t.Fatalf("debian:12: %+v", d)
	}
	if strings.Join(d.Packages, ",") != "bash,coreutils,git,ca-certificates" {
		t.Fatalf("packages %v", d.Packages)
	}
	if b := byName["debian:12-build"]; b.Installed || b.Version != "" || b.Description == "" {
		t.Fatalf("debian:12-build: %+v", b)
	}
	if _, ok := byName["debian:12-base"]; !ok {
		t.Fatal("debian:12-base missing")
	}
}

func TestGetErrors(t *testing.T) {
	s := newTestStore(t, Options{})
	ctx := context.Background()
	_, err := s.Get(ctx, "foo")
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing || !strings.Contains(err.Error(), `run "pyro env pull docker.io/library/foo:latest"`) {
		t.Fatalf("unknown: %v", err)
	}
	// Over MCP the same error names who can fix it: the operator.
	if got := errdefs.ForTool(err); !strings.HasSuffix(got, `: the operator can run "pyro env pull docker.io/library/foo:latest" (call vm_list_environments to see the environments available here)`) {
		t.Fatalf("unknown, for a model: %v", got)
	}
	_, err = s.Get(ctx, "debian:12")
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing || !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("not installed: %v", err)
	}
	if !strings.Contains(err.Error(), `run "pyro env pull debian:12"`) {
		t.Fatalf("message %q", err.Error())
	}
	if _, err := s.Inspect(ctx, "debian:12"); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Fatalf("inspect: %v", err)
	}
	if _, err := s.Pull(ctx, "debian:12", false); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("pull without agent: %v", err)
	}
}
