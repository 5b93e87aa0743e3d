package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

func TestParsePublish(t *testing.T) {
	got, err := parsePublish([]string{"8000", "8080:18080", "53:0"})
	want := []pyro.PortMapping{{GuestPort: 8000}, {GuestPort: 8080, HostPort: 18080}, {GuestPort: 53}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("parsePublish = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "http", "8000:", ":8000", "70000", "80:70000", "80:-1", "80:81:82"} {
		if _, err := parsePublish([]string{bad}); err == nil || !strings.Contains(err.Error(), "GUEST_PORT") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
