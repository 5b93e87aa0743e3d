package pyro

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/env/oci"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/workspace"
	"github.com/pyrovm/pyro/internal/wsdiff"
)

// fill sets every exported field reachable from v to a distinct non-zero
// value, so that a mapping that drops or swaps a field shows in the JSON.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(int64(1e9+*n), 0).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n))
	}
}

func filled[T any]() T {
	var v T
	n := 0
	fill(reflect.ValueOf(&v).Elem(), &n)
	return v
}

func sameJSON(t *testing.T, name string, internal, public any) {
	t.Helper()
	a, err := json.Marshal(internal)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(public)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("%s: the public type's JSON differs from the internal one's\ninternal: %s\npublic:   %s", name, a, b)
	}
}

// TestPublicTypesKeepJSON: the SDK's own result types print exactly the JSON
// of the internal types they are mapped from (the CLI's --json and the MCP
// structured results), both filled and zero.
func TestPublicTypesKeepJSON(t *testing.T) {
	for _, zero := range []bool{false, true} {
		pick := func(v any) any {
			if zero {
				return reflect.Zero(reflect.TypeOf(v)).Interface()
			}
			return v
		}
		m := pick(filled[env.Manifest]()).(env.Manifest)
		if !zero {
			m.Image.Layers = []oci.Layer{{Digest: "sha256:1", Size: 7, MediaType: "tar"}, {Digest: "sha256:2"}}
		}
		sameJSON(t, "EnvironmentManifest", &m, toManifest(&m))
		infos := pick(filled[[]env.Info]()).([]env.Info)
		sameJSON(t, "EnvironmentInfo", infos, toEnvironmentInfos(infos))
		pr := pick(filled[env.PruneResult]()).(env.PruneResult)
		sameJSON(t, "PruneResult", pr, toPruneResult(pr))
		push := pick(filled[env.PushResult]()).(env.PushResult)
		sameJSON(t, "PushResult", push, PushResult(push))
		rules := pick(filled[network.Rules]()).(network.Rules)
		sameJSON(t, "EgressRules", rules, EgressRules(rules))
		blocked := pick(filled[[]network.Blocked]()).([]network.Blocked)
		sameJSON(t, "BlockedConnection", blocked, toBlocked(blocked))
		sec := pick(filled[[]secrets.Info]()).([]secrets.Info)
		sameJSON(t, "SecretInfo", sec, mapSlice(sec, toSecretInfo))
		sk := pick(filled[[]archive.Skipped]()).([]archive.Skipped)
		sameJSON(t, "SkippedFile", sk, mapSlice(sk, toSkipped))
		hist := pick(filled[[]workspace.HistoryEntry]()).([]workspace.HistoryEntry)
		sameJSON(t, "WorkspaceLogEntry", hist, mapSlice(hist, toLogEntry))
		ch := pick(filled[[]wsdiff.Change]()).([]wsdiff.Change)
		sameJSON(t, "FileChange", ch, mapSlice(ch, toFileChange))
		fe := pick(filled[[]workspace.FileEntry]()).([]workspace.FileEntry)
		sameJSON(t, "FileEntry", fe, mapSlice(fe, toFileEntry))
	}
	if m := toManifest(nil); m != nil {
		t.Errorf("toManifest(nil) = %+v", m)
	}
}
