package cli

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/pyrovm/pyro"
)

// progress renders SDK progress events on a terminal (stderr). Off a terminal
// it stays silent, so logs and --json output stay clean.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	stage string
	msg   string
	bar   *progressbar.ProgressBar
	total int64 // the bar's maximum
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *progress) event(e pyro.ProgressEvent) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Stage != p.stage {
		p.finishBar()
		p.stage, p.msg = e.Stage, ""
	}
	if e.Total > 0 {
		if p.bar != nil && e.Total != p.total {
			// Another piece of work in the same stage (kernel, then root filesystem).
			p.finishBar()
		}
		if p.bar == nil {
			p.total = e.Total
			p.bar = progressbar.NewOptions64(e.Total,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(e.Stage),
				progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100_000_000),
				progressbar.OptionClearOnFinish())
		}
		if e.Done <= e.Total {
			_ = p.bar.Set64(e.Done)
		}
		return
	}
	if e.Stage == "step" { // a build step's output, line by line
		fmt.Fprintf(p.w, "    %s\n", e.Message)
		return
	}
	if e.Message != "" && e.Message != p.msg {
		p.msg = e.Message
		fmt.Fprintf(p.w, "==> %s: %s\n", e.Stage, e.Message)
	}
}

func (p *progress) finishBar() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

// done clears any bar left on the terminal.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishBar()
}
