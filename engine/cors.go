package engine

import (
	"bytes"
	"context"
	"strconv"
	"strings"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol/consts"
)

// cors answers preflight requests and adds CORS headers to actual requests
// (the Fetch standard's CORS protocol). It is built once from CORSConfig and
// is safe for concurrent use.
type cors struct {
	anyOrigin     bool
	origins       map[string]bool
	methods       string
	headers       string // empty: echo Access-Control-Request-Headers
	expose        string
	credentials   bool
	maxAgeSeconds string
}

var defaultCORSMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

// newCORS returns nil when CORS is off (no allowed origins).
func newCORS(cfg CORSConfig) *cors {
	if len(cfg.AllowOrigins) == 0 {
		return nil
	}
	c := &cors{origins: map[string]bool{}, credentials: cfg.AllowCredentials}
	for _, o := range cfg.AllowOrigins {
		if o == "*" {
			c.anyOrigin = true
		}
		c.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	methods := cfg.AllowMethods
	if len(methods) == 0 {
		methods = defaultCORSMethods
	}
	c.methods = strings.Join(methods, ", ")
	c.headers = strings.Join(cfg.AllowHeaders, ", ")
	c.expose = strings.Join(cfg.ExposeHeaders, ", ")
	c.maxAgeSeconds = strconv.Itoa(int(cfg.MaxAge.D().Seconds()))
	return c
}

func (p *cors) allowed(origin []byte) bool {
	return p.anyOrigin || p.origins[strings.ToLower(string(origin))]
}

// handle is a hertz middleware.
func (p *cors) handle(ctx context.Context, c *app.RequestContext) {
	origin := c.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		c.Next(ctx)
		return
	}
	h := &c.Response.Header
	preflight := bytes.Equal(c.Request.Method(), []byte(consts.MethodOptions)) &&
		len(c.Request.Header.Peek("Access-Control-Request-Method")) > 0
	if !p.allowed(origin) {
		if preflight {
			// Answer the preflight ourselves without the allow headers: the
			// browser then refuses the actual request.
			c.AbortWithStatus(consts.StatusForbidden)
			return
		}
		c.Next(ctx)
		return
	}
	p.setOrigin(h, origin)
	if !preflight {
		if p.expose != "" {
			h.Set("Access-Control-Expose-Headers", p.expose)
		}
		c.Next(ctx)
		p.setOrigin(&c.Response.Header, origin) // the handler may have reset headers
		return
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", p.methods)
	if p.headers != "" {
		h.Set("Access-Control-Allow-Headers", p.headers)
	} else if rh := c.Request.Header.Peek("Access-Control-Request-Headers"); len(rh) > 0 {
		h.SetBytesV("Access-Control-Allow-Headers", rh)
	}
	h.Set("Access-Control-Max-Age", p.maxAgeSeconds)
	c.AbortWithStatus(consts.StatusNoContent)
}

func (p *cors) setOrigin(h interface {
	Set(k, v string)
	SetBytesV(k string, v []byte)
	Add(k, v string)
	Peek(k string) []byte
}, origin []byte) {
	if p.anyOrigin && !p.credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.SetBytesV("Access-Control-Allow-Origin", origin)
		if !bytes.Contains(h.Peek("Vary"), []byte("Origin")) {
			h.Add("Vary", "Origin")
		}
	}
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
