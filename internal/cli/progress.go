package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws the progress of a long operation on w. On a terminal it redraws one line in place;
// elsewhere (a log file, a test buffer) it prints a plain line at most every plainEvery, so that logs
// stay short, and always a final line.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	now   func() time.Time

	start, last time.Time
	done, total int64
	updated     bool
	width       int // length of the line last drawn on a terminal
}

const (
	plainEvery = 2 * time.Second
	ttyEvery   = 100 * time.Millisecond
	barWidth   = 24
)

func newProgress(w io.Writer, tty bool, label string, now func() time.Time) *progress {
	p := &progress{w: w, tty: tty, label: label, now: now, start: now()}
	if !tty {
		// The first plain line comes plainEvery after the start: a short run prints only its final line.
		p.last = p.start
	}
	return p
}

// update records that done of total units are done and draws if it is time to.
func (p *progress) update(done, total int64) {
	p.done, p.total, p.updated = done, total, true
	t := p.now()
	every := plainEvery
	if p.tty {
		every = ttyEvery
	}
	if !p.last.IsZero() && t.Sub(p.last) < every {
		return
	}
	p.last = t
	p.draw(t, false)
}

// finish draws the final line; nothing when update was never called.
func (p *progress) finish() {
	if p.updated {
		p.draw(p.now(), true)
	}
}

func (p *progress) draw(t time.Time, final bool) {
	line := p.label + " " + renderProgress(p.done, p.total, t.Sub(p.start), final)
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(p.w, "\r%s%s%s", line, strings.Repeat(" ", pad), end)
}

// renderProgress renders a bar, the percentage, the counts, the rate and the estimated time left (or,
// when final, the time taken). done may exceed total: rows written while the operation ran.
func renderProgress(done, total int64, elapsed time.Duration, final bool) string {
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	filled := int(frac * barWidth)
	bar := "[" + strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled) + "]"
	rate, eta := "-- rows/s", "ETA --"
	if done > 0 && elapsed > 0 {
		r := float64(done) / elapsed.Seconds()
		if r < 10 {
			rate = fmt.Sprintf("%.1f rows/s", r)
		} else {
			rate = fmt.Sprintf("%.0f rows/s", r)
		}
		left := time.Duration(float64(max(total-done, 0)) / r * float64(time.Second))
		eta = "ETA " + left.Round(time.Second).String()
	}
	if final {
		eta = "in " + elapsed.Round(100*time.Millisecond).String()
	}
	return fmt.Sprintf("%s %3d%%  %d/%d rows  %s  %s", bar, int(frac*100), done, total, rate, eta)
}

// isTerminal reports whether w is a terminal, without a dependency: a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
