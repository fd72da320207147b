package retention_test

import (
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/retention"
)

func TestParseAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"90d", 90 * retention.Day}, {"1d", retention.Day}, {"36h", 36 * time.Hour}, {"90m", 90 * time.Minute}, {"36525d", 36525 * retention.Day}} {
		if got, err := retention.ParseAge(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0d", "0", "-1d", "1.5d", "d", "90 d", "soon", "36526d", "999999999999999999999d", "-5h"} {
		if got, err := retention.ParseAge(bad); err == nil {
			t.Errorf("ParseAge(%q) = %v, want an error", bad, got)
		}
	}
	if g, err := retention.ParseGrace("0d"); err != nil || g != 0 {
		t.Errorf("ParseGrace(0d) = %v, %v; want 0", g, err)
	}
	if _, err := retention.ParseGrace("-1h"); err == nil {
		t.Error("ParseGrace(-1h) accepted")
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{90 * retention.Day, "90d"}, {0, "0d"}, {36 * time.Hour, "36h0m0s"}} {
		if got := retention.FormatAge(tc.d); got != tc.want {
			t.Errorf("FormatAge(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// What ParseAge accepts, FormatAge writes back in a form that ParseAge reads as the same age.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"90d", "36h", "1h30m", "0d", "-1d", "1e3d", "99999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := retention.ParseAge(s)
		if err != nil {
			return
		}
		if d <= 0 || d > 36525*retention.Day {
			t.Fatalf("ParseAge(%q) = %v: out of range", s, d)
		}
		if back, err := retention.ParseAge(retention.FormatAge(d)); err != nil || back != d {
			t.Fatalf("ParseAge(FormatAge(%v)) = %v, %v", d, back, err)
		}
	})
}
