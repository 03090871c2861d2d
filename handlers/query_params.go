package handlers

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// Parameter types of a query route (the `params:` values).
const (
	ParamInt       = "int"       // 64-bit signed integer, base 10
	ParamFloat     = "float"     // finite float64
	ParamText      = "text"      // UTF-8 text without NUL (the type of undeclared path parameters)
	ParamBool      = "bool"      // true/false, t/f, 1/0 (strconv.ParseBool)
	ParamUUID      = "uuid"      // RFC 9562 hex form, with or without hyphens
	ParamTimestamp = "timestamp" // RFC 3339, or YYYY-MM-DD[THH:MM:SS] read as UTC
)

// queryParam is one bound parameter: its name, where it comes from and
// how its text is parsed.
type queryParam struct {
	name  string
	typ   string
	inURL bool // a {path} segment; otherwise a query-string parameter
}

// segment is one '/'-separated piece of a route pattern: a literal, or a
// whole-segment {name} whose value is bound to parameter param.
type segment struct {
	lit   string
	param int // index into params; -1 for a literal
}

// compilePattern splits pattern into segments and lists the parameters in
// binding order: path parameters in path order, then the other declared
// parameters (query string) sorted by name. $1..$n in the SQL follow it.
func compilePattern(pattern string, types map[string]string) ([]segment, []queryParam, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, nil, fmt.Errorf("%w: path %q must start with /", ErrBadQueryConfig, pattern)
	}
	var segs []segment
	var params []queryParam
	seen := map[string]bool{}
	for _, s := range strings.Split(pattern[1:], "/") {
		if !strings.ContainsAny(s, "{}") {
			segs = append(segs, segment{lit: s, param: -1})
			continue
		}
		if len(s) < 3 || s[0] != '{' || s[len(s)-1] != '}' || strings.ContainsAny(s[1:len(s)-1], "{}") {
			return nil, nil, fmt.Errorf("%w: path %q: a {parameter} must be a whole segment", ErrBadQueryConfig, pattern)
		}
		name := s[1 : len(s)-1]
		if seen[name] {
			return nil, nil, fmt.Errorf("%w: path %q: parameter %q appears twice", ErrBadQueryConfig, pattern, name)
		}
		seen[name] = true
		typ := types[name]
		if typ == "" {
			typ = ParamText
		}
		segs = append(segs, segment{param: len(params)})
		params = append(params, queryParam{name: name, typ: typ, inURL: true})
	}
	var query []string
	for name := range types {
		if !seen[name] {
			query = append(query, name)
		}
	}
	sort.Strings(query)
	for _, name := range query {
		params = append(params, queryParam{name: name, typ: types[name]})
	}
	for _, p := range params {
		switch p.typ {
		case ParamInt, ParamFloat, ParamText, ParamBool, ParamUUID, ParamTimestamp:
		default:
			return nil, nil, fmt.Errorf("%w: param %q: type %q: want int, float, text, bool, uuid or timestamp",
				ErrBadQueryConfig, p.name, p.typ)
		}
	}
	return segs, params, nil
}

// matchPath fills vals[i] with the text of each path parameter; false when
// path does not have the pattern's shape.
func matchPath(segs []segment, path string, vals []string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	rest := path[1:]
	for i, sg := range segs {
		var s string
		j, last := strings.IndexByte(rest, '/'), i == len(segs)-1
		switch {
		case last && j >= 0, !last && j < 0:
			return false // more or fewer segments than the pattern
		case last:
			s = rest
		default:
			s, rest = rest[:j], rest[j+1:]
		}
		if sg.param < 0 {
			if s != sg.lit {
				return false
			}
			continue
		}
		if s == "" {
			return false
		}
		vals[sg.param] = s
	}
	return true
}

// placeholders returns the highest $n in sql outside string literals,
// quoted identifiers, dollar-quoted strings and comments.
func placeholders(sql string) int {
	maxN := 0
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '\'' || c == '"':
			for i++; i < len(sql) && sql[i] != c; i++ {
			}
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			for ; i < len(sql) && sql[i] != '\n'; i++ {
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			if j := strings.Index(sql[i+2:], "*/"); j >= 0 {
				i += j + 3
			} else {
				i = len(sql)
			}
		case c == '$':
			j := i + 1
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			if j > i+1 {
				if n, err := strconv.Atoi(sql[i+1 : j]); err == nil {
					maxN = max(maxN, n)
				}
				i = j - 1
				continue
			}
			// $tag$ ... $tag$ (dollar quoting)
			k := strings.IndexByte(sql[j:], '$')
			if k < 0 || !isTag(sql[j:j+k]) {
				continue
			}
			tag := sql[i : j+k+1]
			if e := strings.Index(sql[j+k+1:], tag); e >= 0 {
				i = j + k + e + len(tag)
			} else {
				i = len(sql)
			}
		}
	}
	return maxN
}

func isTag(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// paramError is a bad request parameter; its message names the parameter.
type paramError struct{ name, want string }

func (e *paramError) Error() string { return "bad parameter " + e.name + ": " + e.want }

// bindParam parses raw as typ and appends the value's canonical form to
// key (length-prefixed, so different argument lists never share a key).
func bindParam(p *queryParam, raw string, key []byte) (any, []byte, error) {
	var v any
	var canon string
	switch p.typ {
	case ParamInt:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, key, &paramError{p.name, "want an integer"}
		}
		v, canon = n, strconv.FormatInt(n, 10)
	case ParamFloat:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, key, &paramError{p.name, "want a finite number"}
		}
		v, canon = f, strconv.FormatFloat(f, 'g', -1, 64)
	case ParamBool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, key, &paramError{p.name, "want true or false"}
		}
		v, canon = b, strconv.FormatBool(b)
	case ParamUUID:
		u, ok := parseUUID(raw)
		if !ok {
			return nil, key, &paramError{p.name, "want a UUID"}
		}
		v, canon = pgtype.UUID{Bytes: u, Valid: true}, string(u[:])
	case ParamTimestamp:
		t, ok := parseTimestamp(raw)
		if !ok {
			return nil, key, &paramError{p.name, "want an RFC 3339 timestamp"}
		}
		v, canon = t, t.UTC().Format(time.RFC3339Nano)
	default: // text
		if !utf8.ValidString(raw) || strings.IndexByte(raw, 0) >= 0 {
			return nil, key, &paramError{p.name, "want UTF-8 text without NUL"}
		}
		v, canon = raw, raw
	}
	key = binary.AppendUvarint(key, uint64(len(canon))+1)
	return v, append(key, canon...), nil
}

func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return u, false
		}
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	}
	if len(s) != 32 {
		return u, false
	}
	_, err := hex.Decode(u[:], []byte(s))
	return u, err == nil
}

var timestampLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"}

func parseTimestamp(s string) (time.Time, bool) {
	// A '+' in a query string decodes to a space: "…T10:00:00 02:00".
	if i := strings.LastIndexByte(s, ' '); i >= 19 && strings.Count(s, " ") == 1 {
		s = s[:i] + "+" + s[i+1:]
	}
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
