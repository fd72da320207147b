package lint

import (
	"encoding/json"
	"fmt"
	"io"
)

// Baseline is a set of accepted findings: a team adopting the linter on an old schema records today's
// findings (the JSON that [WriteJSON] writes) and fails only on new ones. A finding is the same when its
// rule, object and message are; a rewording of a message in a later release makes it new again.
type Baseline struct {
	counts map[baselineKey]int
}

type baselineKey struct{ rule, object, message string }

func keyOf(f Finding) baselineKey { return baselineKey{f.Rule, f.Object, f.Message} }

// NewBaseline accepts fs.
func NewBaseline(fs []Finding) *Baseline {
	b := &Baseline{counts: map[baselineKey]int{}}
	for _, f := range fs {
		b.counts[keyOf(f)]++
	}
	return b
}

// ReadBaseline reads a baseline in the format of [WriteJSON].
func ReadBaseline(r io.Reader) (*Baseline, error) {
	var fs []Finding
	if err := json.NewDecoder(r).Decode(&fs); err != nil {
		return nil, fmt.Errorf("lint: read baseline: %w", err)
	}
	for i, f := range fs {
		if f.Rule == "" || f.Object == "" {
			return nil, fmt.Errorf("lint: read baseline: finding %d has no rule or object", i+1)
		}
	}
	return NewBaseline(fs), nil
}

// Filter splits fs into the findings the baseline does not hold (fresh) and those it accepts. Each
// accepted finding of the baseline accepts one finding of fs.
func (b *Baseline) Filter(fs []Finding) (fresh, accepted []Finding) {
	left := map[baselineKey]int{}
	for k, n := range b.counts {
		left[k] = n
	}
	for _, f := range fs {
		if k := keyOf(f); left[k] > 0 {
			left[k]--
			accepted = append(accepted, f)
			continue
		}
		fresh = append(fresh, f)
	}
	return fresh, accepted
}
