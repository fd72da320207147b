package retention

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Day is 24 hours: retention ages are counted in days of 24 hours.
const Day = 24 * time.Hour

// ParseAge parses a maximum age: whole days as "90d", or a Go duration ("36h", "90m"). It must be
// positive, and at most 100 years.
func ParseAge(s string) (time.Duration, error) {
	d, err := parse(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("retention: age %q: must be positive", s)
	}
	return d, err
}

// ParseGrace parses a grace period as [ParseAge] does, zero ("0d") allowed: at once.
func ParseGrace(s string) (time.Duration, error) {
	d, err := parse(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("retention: grace period %q: must not be negative", s)
	}
	return d, err
}

func parse(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > 36525 {
			return 0, fmt.Errorf("retention: age %q: want whole days (90d) up to 36525d, or a duration (36h)", s)
		}
		d = time.Duration(n) * Day
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d > 36525*Day {
			return 0, fmt.Errorf("retention: age %q: want whole days (90d) up to 36525d, or a duration (36h)", s)
		}
	}
	return d, nil
}

// FormatAge formats d as ParseAge reads it: "90d" for whole days, else as a Go duration.
func FormatAge(d time.Duration) string {
	if d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return d.String()
}
