package bench

import "testing"

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []int64
		want int64
	}{{nil, 0}, {[]int64{5}, 5}, {[]int64{3, 1, 2}, 2}, {[]int64{4, 1, 3, 2}, 2}}
	for _, c := range cases {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestKibField(t *testing.T) {
	status := []byte("Name:\tqemu\nVmRSS:\t   98720 kB\nRssAnon:\t   75904 kB\n")
	if got := kibField(status, "VmRSS:"); got != 98720 {
		t.Errorf("VmRSS = %d", got)
	}
	if got := kibField(status, "RssAnon:"); got != 75904 {
		t.Errorf("RssAnon = %d", got)
	}
	if got := kibField(status, "Pss:"); got != 0 {
		t.Errorf("a missing field = %d", got)
	}
	// A workspace without processes holds nothing.
	m := workspaceMemory("/", "no-such-workspace")
	if m != (memUse{}) {
		t.Errorf("processes of no workspace: %+v", m)
	}
}

func TestMemAvailable(t *testing.T) {
	if kib := memAvailableKiB(); kib <= 0 {
		t.Fatalf("MemAvailable = %d KiB", kib)
	}
}
