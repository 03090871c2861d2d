package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cloudwego/hertz/pkg/app"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/pool"
)

// Defaults for the zero value of QueryConfig.
const (
	defaultQueryTimeout = 30 * time.Second
	// defaultStreamAbove: larger results are streamed as they are read,
	// without an ETag and uncached, so memory per request stays bounded.
	defaultStreamAbove = 1 << 20
	// streamFlush is how much encoded JSON a streamed body hands hertz at a time.
	streamFlush = 32 << 10
)

// Errors returned by NewQuery.
var (
	ErrBadQueryConfig = errors.New("handlers: bad query route config")
)

// JSON error bodies of query routes.
var (
	bodyNotFound    = []byte(`{"error":"not found"}`)
	bodyUnavailable = []byte(`{"error":"database unavailable"}`)
	bodyTimeout     = []byte(`{"error":"query timed out"}`)
	bodyMethod      = []byte(`{"error":"method not allowed"}`)
	queryJSONType   = []byte("application/json")
)

// cacheStatus is the Cache-Status field (RFC 9211) of a cached query
// route's answer, by cache.QueryOutcome.
var cacheStatus = [...]string{
	cache.QueryMiss:      "edgeloop; fwd=miss",
	cache.QueryHit:       "edgeloop; hit",
	cache.QueryCoalesced: "edgeloop; fwd=miss; collapsed",
}

// QueryConfig configures one query route. Zero values of the optional
// fields are their documented defaults.
type QueryConfig struct {
	// Route is the path pattern, e.g. "/api/items/{id}": {name} segments
	// are parameters. It also names the route in metrics and cache keys.
	Route string
	// SQL is the statement. Its $1..$n are, in order, the path parameters
	// in path order, then the declared query-string parameters sorted by
	// name; values are always bound, never interpolated.
	SQL string
	// Params declares parameter types (ParamInt, ...). Undeclared path
	// parameters are text; declared names not in the path come from the
	// query string, and an absent one is bound as NULL.
	Params map[string]string
	// Single answers the first row as one object, 404 when there is none.
	Single bool
	// MaxRows caps the rows answered. Zero: unlimited.
	MaxRows int
	// Timeout bounds the whole query (acquire, execution, reading). If
	// zero, 30s.
	Timeout time.Duration
	// DB is the pool the route queries.
	DB *pool.PG
	// Cache, when set with CacheTTL > 0, stores results by route and
	// bound arguments for CacheTTL with CacheTags, and coalesces
	// concurrent identical queries into one.
	Cache     *cache.QueryCache
	CacheTTL  time.Duration
	CacheTags []string
	// StreamAbove is the body size above which a result is streamed (no
	// ETag, not cached). If zero, 1 MiB.
	StreamAbove int
	// Log receives query failures with their details. If nil, slog.Default().
	Log *slog.Logger
}

// Query is a route that runs one SQL statement with parameters from the
// request and answers its rows as JSON (RFC 8259). Results carry a strong
// ETag (a hash of the body) and a matching If-None-Match gets 304 (RFC 9110
// §13.1.2). It is safe for concurrent use.
type Query struct {
	cfg    QueryConfig
	segs   []segment
	params []queryParam
	nPath  int
	prefix string // cache key prefix: the route
	log    *slog.Logger
	m      queryMetrics
}

// NewQuery checks cfg: the path pattern, parameter types, and that the
// SQL uses exactly $1..$n for the n parameters.
func NewQuery(cfg QueryConfig) (*Query, error) {
	if cfg.DB == nil || cfg.SQL == "" {
		return nil, fmt.Errorf("%w: route %q needs sql and a database", ErrBadQueryConfig, cfg.Route)
	}
	if cfg.MaxRows < 0 || cfg.Timeout < 0 || cfg.StreamAbove < 0 {
		return nil, fmt.Errorf("%w: route %q: negative max_rows, timeout or stream size", ErrBadQueryConfig, cfg.Route)
	}
	segs, params, err := compilePattern(cfg.Route, cfg.Params)
	if err != nil {
		return nil, err
	}
	if n := placeholders(cfg.SQL); n != len(params) {
		return nil, fmt.Errorf("%w: route %q binds %d parameters (%s) but the sql's highest placeholder is $%d",
			ErrBadQueryConfig, cfg.Route, len(params), paramList(params), n)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultQueryTimeout
	}
	if cfg.StreamAbove == 0 {
		cfg.StreamAbove = defaultStreamAbove
	}
	q := &Query{cfg: cfg, segs: segs, params: params, prefix: cfg.Route + "\x00", log: cfg.Log,
		m: newQueryMetrics(cfg.Route)}
	for _, p := range params {
		if p.inURL {
			q.nPath++
		}
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	if cfg.CacheTTL <= 0 {
		q.cfg.Cache = nil
	}
	return q, nil
}

func paramList(ps []queryParam) string {
	var b []byte
	for i, p := range ps {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, '=')
		b = append(b, p.name...)
	}
	if b == nil {
		return "none"
	}
	return string(b)
}

// Close releases nothing: the pool and the cache belong to the server.
func (q *Query) Close() error { return nil }

// Handle is the route's hertz handler.
func (q *Query) Handle(ctx context.Context, c *app.RequestContext) {
	start := time.Now()
	m := string(c.Request.Header.Method())
	if m != "GET" && m != "HEAD" {
		c.Response.Header.Set("Allow", "GET, HEAD")
		writeJSON(c, 405, bodyMethod)
		return
	}
	args, key, err := q.bind(c)
	if err != nil {
		var pe *paramError
		if errors.As(err, &pe) {
			q.m.badParam.Inc()
			writeJSON(c, 400, appendJSONError(nil, pe.Error()))
			return
		}
		q.m.notFound.Inc()
		writeJSON(c, 404, bodyNotFound)
		return
	}
	qctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	if q.cfg.Cache == nil {
		q.serveDirect(qctx, cancel, c, args)
		q.m.seconds.Observe(time.Since(start).Seconds())
		return
	}
	res, out, err := q.cfg.Cache.Get(qctx, string(key), q.cfg.CacheTTL, q.cfg.CacheTags, func() (*cache.QueryResult, error) {
		// The fill serves every coalesced waiter: it must not end when the
		// leading client goes away, only at the route timeout.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.Timeout)
		defer fcancel()
		res, rest, err := q.execute(fctx, args, q.cfg.StreamAbove)
		if rest != nil {
			rest.Close()
			return nil, cache.ErrQueryTooBig
		}
		return res, err
	})
	c.Response.Header.Set("Cache-Status", cacheStatus[out])
	switch {
	case errors.Is(err, cache.ErrQueryTooBig):
		// Too big to cache: stream it; the stream's Close cancels qctx.
		q.serveDirect(qctx, cancel, c, args)
	case err != nil:
		cancel()
		q.fail(c, err)
	default:
		cancel()
		q.writeResult(c, res)
	}
	q.m.seconds.Observe(time.Since(start).Seconds())
}

// bind matches the path and parses every parameter, building the cache
// key (route, then each canonical argument) on the way.
func (q *Query) bind(c *app.RequestContext) ([]any, []byte, error) {
	var vals [8]string
	pathVals := vals[:0]
	if q.nPath > len(vals) {
		pathVals = make([]string, q.nPath)
	} else {
		pathVals = vals[:q.nPath]
	}
	if !matchPath(q.segs, string(c.Request.URI().Path()), pathVals) {
		return nil, nil, errNoMatch
	}
	args := make([]any, len(q.params))
	key := append(make([]byte, 0, 64), q.prefix...)
	qa := c.QueryArgs()
	for i := range q.params {
		p := &q.params[i]
		var raw string
		if p.inURL {
			raw = pathVals[i]
		} else {
			all := qa.PeekAll(p.name)
			if len(all) == 0 {
				key = append(key, 0) // NULL
				continue
			}
			if len(all) > 1 {
				return nil, nil, &paramError{p.name, "given more than once"}
			}
			raw = string(all[0])
		}
		var err error
		if args[i], key, err = bindParam(p, raw, key); err != nil {
			return nil, nil, err
		}
	}
	return args, key, nil
}

var errNoMatch = errors.New("handlers: path does not match the route")

// execute runs the query and encodes up to limit bytes of JSON. When the
// whole answer fits it returns it with its ETag; otherwise it returns the
// open stream (holding the connection) with what was encoded so far.
func (q *Query) execute(ctx context.Context, args []any, limit int) (*cache.QueryResult, *rowStream, error) {
	rows, err := q.cfg.DB.Query(ctx, q.cfg.SQL, args...)
	if err != nil {
		return nil, nil, err
	}
	s := &rowStream{q: q, rows: rows, enc: newRowEncoder(rows.FieldDescriptions())}
	if q.cfg.Single {
		if !rows.Next() {
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, nil, err
			}
			return &cache.QueryResult{Status: 404, Body: bodyNotFound}, nil, nil
		}
		body, err := s.enc.appendRow(nil, rows)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return nil, nil, err
		}
		return newResult(body), nil, nil
	}
	s.buf = append(make([]byte, 0, 512), '[')
	for len(s.buf) <= limit {
		done, err := s.next()
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		if done {
			return newResult(s.buf), nil, nil
		}
	}
	return nil, s, nil
}

func newResult(body []byte) *cache.QueryResult {
	var etag [18]byte
	etag[0], etag[17] = '"', '"'
	h := xxhash.Sum64(body)
	const hexd = "0123456789abcdef"
	for i := 0; i < 16; i++ {
		etag[16-i] = hexd[h&15]
		h >>= 4
	}
	return &cache.QueryResult{Status: 200, ETag: string(etag[:]), Body: body}
}

// serveDirect answers without the result cache: buffered with an ETag when
// the result is small, streamed row by row when it is not.
func (q *Query) serveDirect(ctx context.Context, cancel context.CancelFunc, c *app.RequestContext, args []any) {
	res, rest, err := q.execute(ctx, args, q.cfg.StreamAbove)
	switch {
	case err != nil:
		cancel()
		q.fail(c, err)
	case rest != nil:
		// hertz copies the stream to the client and closes it at the end
		// or when the client went away; Close releases the connection.
		q.m.ok.Inc()
		q.m.streamed.Inc()
		rest.cancel = cancel
		c.Response.Header.SetContentTypeBytes(queryJSONType)
		c.Response.SetBodyStream(rest, -1)
	default:
		cancel()
		q.writeResult(c, res)
	}
}

func (q *Query) writeResult(c *app.RequestContext, res *cache.QueryResult) {
	if res.Status != 200 {
		q.m.notFound.Inc()
		writeJSON(c, res.Status, res.Body)
		return
	}
	c.Response.Header.Set("ETag", res.ETag)
	if inm := c.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagListMatch(inm, []byte(res.ETag)) {
		q.m.notModified.Inc()
		c.Response.SetStatusCode(304)
		return
	}
	q.m.ok.Inc()
	writeJSON(c, 200, res.Body)
}

// fail answers a failed query: 503 when the database cannot be reached,
// 504 at the route timeout, else 500 with the SQLSTATE only; the details go
// to the log, never to the client.
func (q *Query) fail(c *app.RequestContext, err error) {
	switch {
	case errors.Is(err, pool.ErrPGUnavailable), errors.Is(err, pool.ErrPGClosed):
		q.m.unavailable.Inc()
		q.log.Warn("database unavailable", "route", q.cfg.Route, "err", err)
		writeJSON(c, 503, bodyUnavailable)
	case errors.Is(err, pool.ErrPGTimeout), errors.Is(err, context.DeadlineExceeded):
		q.m.timeout.Inc()
		q.log.Warn("query timed out", "route", q.cfg.Route, "err", err)
		writeJSON(c, 504, bodyTimeout)
	default:
		q.m.failed.Inc()
		q.log.Error("query failed", "route", q.cfg.Route, "err", err)
		body := []byte(`{"error":"query failed"`)
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			body = append(append(append(body, `,"code":"`...), pe.Code...), '"')
		}
		writeJSON(c, 500, append(body, '}'))
	}
}

func writeJSON(c *app.RequestContext, status int, body []byte) {
	c.Response.SetStatusCode(status)
	c.Response.Header.SetContentTypeBytes(queryJSONType)
	c.Response.SetBodyRaw(body)
}

func appendJSONError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	return append(appendJSONString(dst, msg), '}')
}

// etagListMatch applies If-None-Match's weak comparison (RFC 9110
// §13.1.2): "*" or any listed tag equal to etag ignoring W/.
func etagListMatch(list, etag []byte) bool {
	for len(list) > 0 {
		list = bytes.TrimLeft(list, " \t,")
		if len(list) == 0 {
			return false
		}
		if list[0] == '*' {
			return true
		}
		end := bytes.IndexByte(list, ',')
		if end < 0 {
			end = len(list)
		}
		t := bytes.TrimRight(list[:end], " \t")
		t = bytes.TrimPrefix(t, []byte("W/"))
		if bytes.Equal(t, etag) {
			return true
		}
		list = list[end:]
	}
	return false
}

// rowStream encodes rows as they arrive; hertz reads it as the response
// body. It owns the rows (and so the pooled connection) until Close.
type rowStream struct {
	q      *Query
	rows   pgx.Rows
	enc    *rowEncoder
	buf    []byte
	off    int
	n      int // rows written
	done   bool
	cancel context.CancelFunc
}

// next encodes one more row into buf, or the closing bracket when the rows
// (or max_rows) are exhausted.
func (s *rowStream) next() (done bool, err error) {
	if s.done {
		return true, nil
	}
	if (s.q.cfg.MaxRows > 0 && s.n >= s.q.cfg.MaxRows) || !s.rows.Next() {
		s.rows.Close()
		if err := s.rows.Err(); err != nil {
			return false, err
		}
		s.done = true
		s.buf = append(s.buf, ']')
		return true, nil
	}
	if s.n > 0 {
		s.buf = append(s.buf, ',')
	}
	s.n++
	s.buf, err = s.enc.appendRow(s.buf, s.rows)
	return false, err
}

// Read implements io.Reader for hertz's body copy.
func (s *rowStream) Read(p []byte) (int, error) {
	for s.off == len(s.buf) {
		if s.done {
			return 0, io.EOF
		}
		s.buf, s.off = s.buf[:0], 0
		for len(s.buf) < streamFlush {
			done, err := s.next()
			if err != nil {
				// The status line is gone: end the chunked body without
				// its last chunk so the client sees the answer is broken.
				s.q.m.failed.Inc()
				s.q.log.Error("query failed while streaming", "route", s.q.cfg.Route, "rows", s.n, "err", err)
				return 0, err
			}
			if done {
				break
			}
		}
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	return n, nil
}

// Close ends the query and releases its connection.
func (s *rowStream) Close() error {
	s.rows.Close()
	if s.cancel != nil {
		s.cancel()
	}
	return nil
}
