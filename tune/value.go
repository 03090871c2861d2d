package tune

import (
	"fmt"
	"strconv"
	"strings"
)

// normalize turns the text of a /proc/sys file (fields separated by tabs,
// trailing newline) into single-space separated fields.
func normalize(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ints parses the fields of v as n integers (n < 0: any count).
func ints(v string, n int) ([]int64, error) {
	f := strings.Fields(v)
	if n >= 0 && len(f) != n {
		return nil, fmt.Errorf("%w: %q has %d fields, want %d", ErrMalformed, v, len(f), n)
	}
	out := make([]int64, len(f))
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not a number", ErrMalformed, s)
		}
		out[i] = x
	}
	return out, nil
}

// width is the number of fields a kind's values have (-1: free text).
func (k kind) width() int {
	switch k {
	case portRange:
		return 2
	case fieldsMin:
		return 3
	case exact:
		return -1
	}
	return 1
}

// check parses current and reports whether it meets rec. rec comes from the
// table and is well formed; current comes from the host and may not be.
func (k kind) check(current, rec string) (bool, error) {
	if k == exact {
		if current == "" {
			return false, fmt.Errorf("%w: empty", ErrMalformed)
		}
		return current == rec, nil
	}
	cur, err := ints(current, k.width())
	if err != nil {
		return false, err
	}
	want, err := ints(rec, k.width())
	if err != nil {
		return false, fmt.Errorf("recommendation: %w", err)
	}
	switch k {
	case atLeast:
		return cur[0] >= want[0], nil
	case atMost:
		return cur[0] <= want[0], nil
	case bits:
		return cur[0]&want[0] == want[0], nil
	case portRange:
		if cur[0] > cur[1] {
			return false, fmt.Errorf("%w: range %q is inverted", ErrMalformed, current)
		}
		return cur[0] <= want[0] && cur[1] >= want[1], nil
	case fieldsMin:
		for i := range cur {
			if cur[i] < want[i] {
				return false, nil
			}
		}
		return true, nil
	}
	return false, fmt.Errorf("unknown comparison %d", k)
}

// merge returns the value Apply writes: the recommendation, moved so that no
// part of the current value gets worse (a limit already above stays above, a
// timeout already below stays below, set bits stay set, a wider port range
// stays wide). current must already have passed check.
func (k kind) merge(current, rec string) string {
	if k == exact {
		return rec
	}
	cur, err1 := ints(current, k.width())
	want, err2 := ints(rec, k.width())
	if err1 != nil || err2 != nil {
		return rec
	}
	out := make([]int64, len(want))
	switch k {
	case atLeast, fieldsMin:
		for i := range want {
			out[i] = max(cur[i], want[i])
		}
	case atMost:
		out[0] = min(cur[0], want[0])
	case bits:
		out[0] = cur[0] | want[0]
	case portRange:
		out[0], out[1] = min(cur[0], want[0]), max(cur[1], want[1])
	}
	s := make([]string, len(out))
	for i, x := range out {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, " ")
}
