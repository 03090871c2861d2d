package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration that reads from YAML as a Go duration string
// ("30s", "1m30s", "250ms"). A bare 0 is accepted; other bare numbers are refused
// because "30" could mean seconds or milliseconds.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a duration such as 30s")
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return lineErr(n, "bad duration %q (want e.g. 500ms, 30s, 5m)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count that reads from YAML as a number with an optional unit:
// B, KB/MB/GB (powers of 1000), KiB/MiB/GiB (powers of 1024), or nginx's k/m/g
// (powers of 1024).
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a size such as 10MiB")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return lineErr(n, "%v", err)
	}
	*s = Size(v)
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// ParseSize parses "10MiB", "512k", "1GB" or "4096" into bytes.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || t == "" {
		return 0, fmt.Errorf("bad size %q (want e.g. 512KiB, 10MiB, 1GB)", s)
	}
	v := n * float64(mult)
	if v > 1<<62 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v), nil
}

// Rate is a request rate written nginx style: "1000/m", "20/s", "50000/h".
// "0" or "off" disables the limit.
type Rate struct {
	PerSecond float64
	Text      string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a rate such as 1000/m")
	}
	v, err := ParseRate(n.Value)
	if err != nil {
		return lineErr(n, "%v", err)
	}
	*r = v
	return nil
}

// ParseRate parses "1000/m", "20/s", "50000/h", "0" or "off".
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	if t == "0" || t == "off" {
		return Rate{Text: "off"}, nil
	}
	num, unit, ok := strings.Cut(t, "/")
	if !ok {
		return Rate{}, fmt.Errorf("bad rate %q (want e.g. 1000/m, 20/s or off)", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(num, "r"), 64)
	if err != nil || n < 0 {
		return Rate{}, fmt.Errorf("bad rate %q (want e.g. 1000/m, 20/s or off)", s)
	}
	var per time.Duration
	switch unit {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	default:
		return Rate{}, fmt.Errorf("bad rate unit in %q (want /s, /m or /h)", s)
	}
	return Rate{PerSecond: n / per.Seconds(), Text: s}, nil
}

// StringList reads either a single YAML string or a sequence of strings.
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return lineErr(c, "expected a string")
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return lineErr(n, "expected a string or a list of strings")
}

// lineError carries the YAML line of a problem so the loader can print FILE:LINE.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func lineErr(n *yaml.Node, format string, args ...any) error {
	return &lineError{line: n.Line, msg: fmt.Sprintf(format, args...)}
}
