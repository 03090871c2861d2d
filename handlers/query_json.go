package handlers

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// rowEncoder writes result rows as JSON objects keyed by column name.
// It is used by one goroutine at a time.
type rowEncoder struct {
	keys   [][]byte // `"name":` per column, pre-encoded
	fields []pgconn.FieldDescription
}

func newRowEncoder(fields []pgconn.FieldDescription) *rowEncoder {
	e := &rowEncoder{fields: fields, keys: make([][]byte, len(fields))}
	for i, f := range fields {
		k := appendJSONString(nil, f.Name)
		e.keys[i] = append(k, ':')
	}
	return e
}

// appendRow appends the current row of rows as one JSON object.
func (e *rowEncoder) appendRow(dst []byte, rows pgx.Rows) ([]byte, error) {
	vals, err := rows.Values()
	if err != nil {
		return dst, err
	}
	raw := rows.RawValues()
	dst = append(dst, '{')
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e.keys[i]...)
		dst = e.appendValue(dst, i, v, raw)
	}
	return append(dst, '}'), nil
}

func (e *rowEncoder) appendValue(dst []byte, col int, v any, raw [][]byte) []byte {
	f := &e.fields[col]
	switch f.DataTypeOID {
	case pgtype.JSONOID, pgtype.JSONBOID:
		// Pass json and jsonb through as the server wrote them, which keeps
		// numbers exact; binary jsonb carries a version byte (1) first.
		if col < len(raw) && raw[col] != nil {
			b := raw[col]
			if f.Format == pgtype.BinaryFormatCode && f.DataTypeOID == pgtype.JSONBOID && len(b) > 0 && b[0] == 1 {
				b = b[1:]
			}
			if json.Valid(b) {
				return append(dst, b...)
			}
		}
	case pgtype.DateOID:
		if t, ok := v.(time.Time); ok {
			dst = append(dst, '"')
			dst = t.AppendFormat(dst, time.DateOnly)
			return append(dst, '"')
		}
	case pgtype.TimestampOID:
		if t, ok := v.(time.Time); ok {
			dst = append(dst, '"')
			dst = t.AppendFormat(dst, "2006-01-02T15:04:05.999999999")
			return append(dst, '"')
		}
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, x)
	case int16:
		return strconv.AppendInt(dst, int64(x), 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10)
	case float32:
		return appendFloat(dst, float64(x), 32)
	case float64:
		return appendFloat(dst, x, 64)
	case string:
		return appendJSONString(dst, x)
	case time.Time:
		dst = append(dst, '"')
		dst = x.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case [16]byte:
		return appendUUID(dst, x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return appendJSONString(dst, fmt.Sprint(v))
	}
	return append(dst, b...)
}

// appendFloat writes NaN and ±Infinity (valid in float8, not in JSON) as
// strings, the way PostgreSQL's to_json does not but clients can parse.
func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

func appendUUID(dst []byte, u [16]byte) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexd[b>>4], hexd[b&15])
	}
	return append(dst, '"')
}

// appendJSONString appends s as a JSON string (RFC 8259 §7); invalid
// UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
