package cli

import (
	"context"
	"io"
	"strings"
	"time"
)

// RenderProgress exposes renderProgress to the tests of its arithmetic.
var RenderProgress = renderProgress

// Progress exposes a progress bar with a test clock.
type Progress struct{ p *progress }

func NewProgress(w io.Writer, tty bool, label string, now func() time.Time) Progress {
	return Progress{newProgress(w, tty, label, now)}
}

func (p Progress) Update(done, total int64) { p.p.update(done, total) }
func (p Progress) Finish()                  { p.p.finish() }

// RunAudit runs `tenantseal audit args...` under ctx, as Run would, with --follow polling every interval
// and calling polled after each poll.
func RunAudit(ctx context.Context, args []string, stdout, stderr io.Writer, interval time.Duration, polled func()) int {
	s := &session{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr}
	return s.exit(ctx, runAudit(ctx, s, args, follower{interval: interval, polled: polled}))
}

// WithMetricsScrape returns opts whose metrics server, with --metrics-addr, calls scrape with its URL
// before it stops at the end of the command.
func WithMetricsScrape(opts Options, scrape func(url string)) Options {
	opts.beforeMetricsStop = scrape
	return opts
}
