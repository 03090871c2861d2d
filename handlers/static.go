package handlers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol/consts"
)

// Errors returned by NewStatic.
var (
	// ErrStaticRoot means StaticConfig.Root does not exist or is not a directory.
	ErrStaticRoot = errors.New("static root is not a directory")
	// ErrStaticConfig means a StaticConfig field has an unusable value.
	ErrStaticConfig = errors.New("invalid static config")
)

// Defaults used for zero StaticConfig fields.
const (
	defaultStaticIndex         = "index.html"
	defaultStaticCacheFileSize = 64 << 10 // bytes; larger files stream from disk
	defaultStaticCacheBytes    = 8 << 20  // bytes held by the small-file cache
	defaultStaticCacheEntries  = 4096
	defaultStaticRevalidate    = time.Second
)

// StaticConfig configures a Static handler. The zero value serves the
// embedded default site at "/" with "index.html" as the directory index.
type StaticConfig struct {
	// Root is the directory to serve. If empty, the embedded default site
	// (handlers/site) is served from memory.
	Root string
	// StripPrefix is removed from the request path before the file lookup,
	// like nginx's alias or Caddy's handle_path: with StripPrefix "/assets",
	// "/assets/app.css" serves Root/app.css. A trailing slash is ignored.
	// Requests outside the prefix get 404.
	StripPrefix string
	// Index is the file served for a directory path ending in "/".
	// If empty, "index.html" is used.
	Index string
	// CacheControl, when set, is sent as the Cache-Control header of every
	// file response (including 304s, RFC 9110 §15.4.5).
	CacheControl string

	// CacheFileSize is the largest Root file kept in memory; larger files
	// are streamed from disk (sendfile on the standard transport). If zero,
	// 64 KiB is used; negative disables the cache.
	CacheFileSize int64
	// CacheBytes caps the total bytes of cached file contents. If zero,
	// 8 MiB is used.
	CacheBytes int64
	// Revalidate is how long a cached Root file is trusted before it is
	// stat'ed again to pick up changes on disk. If zero, 1s is used.
	Revalidate time.Duration
}

// Static serves files from a directory or from the embedded default site
// with the behaviour users of nginx expect: GET and HEAD only, validators
// (ETag, Last-Modified), conditional requests and single byte ranges
// (RFC 9110 §13, §14), directory index and redirect, and no way out of Root.
//
// A Static is safe for concurrent use. Handle must not be called after Close
// (it answers 503 if it is). Response bodies of in-memory files are shared,
// read-only memory (Response.SetBodyRaw): middleware may read Body() but
// must not modify it in place.
type Static struct {
	prefix       []byte
	index        string
	cacheControl []byte

	embedded map[string]*staticEntry // the default site; nil when serving a Root

	root       *os.Root // nil for the embedded site
	cache      *staticCache
	maxFile    int64
	revalidate int64 // nanoseconds
	closed     atomic.Bool

	now func() time.Time // testing
}

// NewStatic returns a handler for cfg. It fails with ErrStaticRoot when
// cfg.Root is set but is not an existing directory.
func NewStatic(cfg StaticConfig) (*Static, error) {
	s := &Static{
		prefix:     []byte(strings.TrimRight(cfg.StripPrefix, "/")),
		index:      cfg.Index,
		maxFile:    cfg.CacheFileSize,
		revalidate: int64(cfg.Revalidate),
		now:        time.Now,
	}
	if s.index == "" {
		s.index = defaultStaticIndex
	}
	if strings.ContainsAny(s.index, "/\\\x00") || s.index[0] == '.' {
		return nil, fmt.Errorf("%w: index %q must be a plain file name", ErrStaticConfig, s.index)
	}
	if len(s.prefix) > 0 && s.prefix[0] != '/' {
		return nil, fmt.Errorf("%w: strip prefix %q must start with /", ErrStaticConfig, cfg.StripPrefix)
	}
	if cfg.CacheControl != "" {
		if strings.ContainsAny(cfg.CacheControl, "\r\n") {
			return nil, fmt.Errorf("%w: cache control contains a line break", ErrStaticConfig)
		}
		s.cacheControl = []byte(cfg.CacheControl)
	}
	if s.maxFile == 0 {
		s.maxFile = defaultStaticCacheFileSize
	}
	if s.revalidate <= 0 {
		s.revalidate = int64(defaultStaticRevalidate)
	}

	if cfg.Root == "" {
		m, err := staticEmbeddedEntries(s.index)
		if err != nil {
			return nil, fmt.Errorf("load embedded site: %w", err)
		}
		s.embedded = m
		return s, nil
	}

	fi, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStaticRoot, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s", ErrStaticRoot, cfg.Root)
	}
	// os.Root resolves every name beneath the directory and refuses
	// symlinks and ".." that would leave it (openat2 RESOLVE_BENEATH
	// semantics), so a symlink inside Root cannot expose /etc.
	if s.root, err = os.OpenRoot(cfg.Root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStaticRoot, err)
	}
	maxBytes := cfg.CacheBytes
	if maxBytes <= 0 {
		maxBytes = defaultStaticCacheBytes
	}
	s.cache = newStaticCache(maxBytes, defaultStaticCacheEntries)
	return s, nil
}

// Close releases the Root directory and drops cached files.
func (s *Static) Close() error {
	if !s.closed.CompareAndSwap(false, true) || s.root == nil {
		return nil
	}
	s.cache.clear()
	return s.root.Close()
}

// Handle serves the file named by the request path.
func (s *Static) Handle(_ context.Context, c *app.RequestContext) {
	h := &c.Request.Header
	isGet := h.IsGet()
	if !isGet && !h.IsHead() {
		staticError(c, consts.StatusMethodNotAllowed)
		c.Response.Header.SetCanonical(staticHdrAllow, staticAllowValue)
		return
	}
	rel, dirReq, ok := s.relPath(c.Path())
	if !ok {
		staticError(c, consts.StatusNotFound)
		return
	}
	if len(rel) == 0 && !dirReq {
		staticRedirect(c) // the bare prefix names the root directory
		return
	}
	if s.embedded != nil {
		e := s.embedded[string(rel)]
		switch {
		case e == nil:
			staticError(c, consts.StatusNotFound)
		case e.redirect:
			staticRedirect(c)
		default:
			s.serveEntry(c, e, nil, isGet)
		}
		return
	}
	if s.closed.Load() {
		staticError(c, consts.StatusServiceUnavailable)
		return
	}
	if e := s.cache.get(rel); e != nil && s.fresh(e) {
		s.serveEntry(c, e, nil, isGet)
		return
	}
	s.serveDisk(c, string(rel), dirReq, isGet)
}

// relPath strips the prefix and the leading slash from the (already
// normalized) request path and vets every segment. It returns the name
// relative to the root, with a trailing slash kept for directory requests.
// Segments starting with '.' (".", "..", ".git", ".env") and names holding
// a backslash or NUL are refused: hertz decodes %2e%2e and %5c before we
// see them, and a raw-path engine setting must not reopen the hole.
func (s *Static) relPath(p []byte) (rel []byte, dirReq, ok bool) {
	if len(s.prefix) > 0 {
		if len(p) < len(s.prefix) || string(p[:len(s.prefix)]) != string(s.prefix) {
			return nil, false, false
		}
		p = p[len(s.prefix):]
		if len(p) == 0 {
			return p, false, true // "/assets" -> redirect to "/assets/"
		}
	}
	if len(p) == 0 || p[0] != '/' {
		return nil, false, false
	}
	p = p[1:]
	segStart := true
	for i, b := range p {
		switch {
		case b == 0 || b == '\\':
			return nil, false, false
		case b == '/':
			if segStart {
				return nil, false, false // empty segment
			}
			segStart = true
		case segStart:
			if b == '.' && (i != 0 || !staticWellKnown(p)) {
				return nil, false, false
			}
			segStart = false
		}
	}
	return p, len(p) == 0 || p[len(p)-1] == '/', true
}

// staticWellKnown reports whether rel starts with the /.well-known/
// directory (RFC 8615), the one dot-named directory sites must serve,
// e.g. for ACME http-01 challenges.
func staticWellKnown(rel []byte) bool {
	const wk = ".well-known"
	return len(rel) >= len(wk) && string(rel[:len(wk)]) == wk && (len(rel) == len(wk) || rel[len(wk)] == '/')
}
