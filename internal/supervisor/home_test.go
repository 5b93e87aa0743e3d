package supervisor

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchHome(t *testing.T) {
	for name, lose := range map[string]func(dir string) error{
		"removed": os.RemoveAll,
		"moved":   func(dir string) error { return os.Rename(dir, dir+".moved") },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ws")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			called := make(chan struct{}, 2)
			w, err := watchHome(dir, func() { called <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			defer w.stop()
			// A file kept open inside, as QEMU keeps its disk, pins the
			// directory; files and siblings coming and going are not it going.
			f, err := os.Create(filepath.Join(dir, "disk"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range []string{filepath.Join(dir, "f"), dir + "-sibling"} {
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-w.gone:
				t.Fatal("gone while the directory is there")
			case <-time.After(100 * time.Millisecond):
			}
			if err := lose(dir); err != nil {
				t.Fatal(err)
			}
			select {
			case <-w.gone:
			case <-time.After(5 * time.Second):
				t.Fatal("not told the directory is gone")
			}
			<-called
		})
	}
}

func TestWatchHomeAlreadyGone(t *testing.T) {
	called := false
	w, err := watchHome(filepath.Join(t.TempDir(), "never"), func() { called = true })
	if err != nil {
		t.Fatal(err)
	}
	w.stop()
	if !called {
		t.Fatal("a missing directory must count as gone")
	}
}

func TestWatchHomeStop(t *testing.T) {
	w, err := watchHome(t.TempDir(), func() { t.Error("called after stop") })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not end the watch")
	}
}
