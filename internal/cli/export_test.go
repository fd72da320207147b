package cli

import (
	"io"
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
