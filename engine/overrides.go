package engine

import "strings"

// Overrides are the command line's and the environment's settings, applied
// on top of the config file: flags over environment over file.
type Overrides struct {
	Listen    []string // --listen, EDGELOOP_LISTEN
	Admin     string   // --admin
	Upstreams []string // --upstream (repeatable), EDGELOOP_UPSTREAM
	Root      string   // --root
	Transport string   // --transport
	CacheSize int64    // --cache: cache the / route in this much memory
}

// FromEnv reads EDGELOOP_LISTEN and EDGELOOP_UPSTREAM (comma or space
// separated lists) through getenv, which tests replace.
func FromEnv(getenv func(string) string) Overrides {
	return Overrides{
		Listen:    splitList(getenv("EDGELOOP_LISTEN")),
		Upstreams: splitList(getenv("EDGELOOP_UPSTREAM")),
	}
}

// Merge returns o with every field that is set in top replacing it.
func (o Overrides) Merge(top Overrides) Overrides {
	if len(top.Listen) > 0 {
		o.Listen = top.Listen
	}
	if top.Admin != "" {
		o.Admin = top.Admin
	}
	if len(top.Upstreams) > 0 {
		o.Upstreams = top.Upstreams
		o.Root = ""
	}
	if top.Root != "" {
		o.Root = top.Root
		o.Upstreams = nil
	}
	if top.Transport != "" {
		o.Transport = top.Transport
	}
	if top.CacheSize != 0 {
		o.CacheSize = top.CacheSize
	}
	return o
}

// Apply writes the overrides into c and normalizes it again. --upstream and
// --root replace the catch-all "/" route (or add one), leaving the file's
// other routes in place.
func (c *Config) Apply(o Overrides) error {
	if len(o.Listen) > 0 {
		c.Listen = o.Listen
	}
	if o.Admin != "" {
		c.Admin = o.Admin
	}
	if o.Transport != "" {
		c.Transport = o.Transport
	}
	if len(o.Upstreams) > 0 || o.Root != "" {
		r := Route{Path: "/", Upstreams: o.Upstreams, Root: o.Root}
		replaced := false
		for i := range c.Routes {
			if c.Routes[i].Path == "/" {
				r.Timeout, r.HostHeader = 0, c.Routes[i].HostHeader
				c.Routes[i] = r
				replaced = true
			}
		}
		if !replaced {
			c.Routes = append(c.Routes, r)
		}
	}
	if o.CacheSize > 0 {
		c.Cache.Size = Size(o.CacheSize)
		for i := range c.Routes {
			if c.Routes[i].Path == "/" && c.Routes[i].Cache == nil {
				c.Routes[i].Cache = &RouteCache{}
			}
		}
	}
	return c.Normalize()
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}
