package cli_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/internal/cli"
)

func TestRenderProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		done, total int64
		elapsed     time.Duration
		final       bool
		want        string
	}{
		{"nothing yet", 0, 1000, 0, false,
			"[                        ]   0%  0/1000 rows  -- rows/s  ETA --"},
		{"a quarter in 5s: 50 rows/s, 750 left", 250, 1000, 5 * time.Second, false,
			"[======                  ]  25%  250/1000 rows  50 rows/s  ETA 15s"},
		{"half in a minute: 8.3 rows/s, a minute left", 500, 1000, time.Minute, false,
			"[============            ]  50%  500/1000 rows  8.3 rows/s  ETA 1m0s"},
		{"floors the bar and the percentage", 3, 7, 3 * time.Second, false,
			"[==========              ]  42%  3/7 rows  1.0 rows/s  ETA 4s"},
		{"hours left", 10, 100_000, 10 * time.Second, false,
			"[                        ]   0%  10/100000 rows  1.0 rows/s  ETA 27h46m30s"},
		{"rows added while running: capped at 100%, nothing left", 1200, 1000, 4 * time.Second, false,
			"[========================] 100%  1200/1000 rows  300 rows/s  ETA 0s"},
		{"no rows at all", 0, 0, time.Second, false,
			"[========================] 100%  0/0 rows  -- rows/s  ETA --"},
		{"final line shows the time taken", 1000, 1000, 2500 * time.Millisecond, true,
			"[========================] 100%  1000/1000 rows  400 rows/s  in 2.5s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cli.RenderProgress(tc.done, tc.total, tc.elapsed, tc.final); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// clock is a test clock that moves only when told.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

func TestProgressPlainLinesAtMostEveryTwoSeconds(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Unix(1e9, 0)}
	var buf bytes.Buffer
	p := cli.NewProgress(&buf, false, "tenant t", c.Now)
	for i := int64(1); i <= 10; i++ {
		c.advance(700 * time.Millisecond) // 0.7s, 1.4s, 2.1s (drawn), 2.8s, 3.5s, 4.2s (drawn), ...
		p.Update(i*100, 1000)
	}
	p.Finish()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{
		"tenant t [=======                 ]  30%  300/1000 rows  143 rows/s  ETA 5s",
		"tenant t [==============          ]  60%  600/1000 rows  143 rows/s  ETA 3s",
		"tenant t [=====================   ]  90%  900/1000 rows  143 rows/s  ETA 1s",
		"tenant t [========================] 100%  1000/1000 rows  143 rows/s  in 7s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProgressShortRunPrintsOnlyTheFinalLine(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Unix(1e9, 0)}
	var buf bytes.Buffer
	p := cli.NewProgress(&buf, false, "x", c.Now)
	c.advance(time.Second)
	p.Update(5, 5)
	p.Finish()
	if want := "x [========================] 100%  5/5 rows  5.0 rows/s  in 1s\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}

	// Nothing to report, nothing printed.
	buf.Reset()
	cli.NewProgress(&buf, false, "x", c.Now).Finish()
	if buf.Len() != 0 {
		t.Errorf("got %q, want nothing without an update", buf.String())
	}
}

func TestProgressTerminalRedrawsInPlace(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Unix(1e9, 0)}
	var buf bytes.Buffer
	p := cli.NewProgress(&buf, true, "t", c.Now)
	c.advance(time.Second)
	p.Update(10, 100000)
	c.advance(50 * time.Millisecond) // within 100ms of the last draw: skipped
	p.Update(20, 100000)
	c.advance(time.Second)
	p.Update(99999, 100000)
	p.Finish()
	draws := strings.Split(buf.String(), "\r")[1:]
	if len(draws) != 3 {
		t.Fatalf("got %d draws %q, want 3", len(draws), buf.String())
	}
	if strings.Contains(draws[0], "\n") || strings.Contains(draws[1], "\n") || !strings.HasSuffix(draws[2], "\n") {
		t.Errorf("got %q, want redraws without newlines and a final newline", buf.String())
	}
	// A shorter line blanks what the longer one before it left.
	if len(draws[1]) < len(draws[0]) {
		t.Errorf("draw %q is shorter than %q: leftovers stay on screen", draws[1], draws[0])
	}
}
