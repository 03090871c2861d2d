package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/edgeloop/edgeloop/bpf"
)

// topSources is how many sources GET /guard/status lists per ranking.
const topSources = 10

// GuardStatus is the body of GET /guard/status on the admin listener.
type GuardStatus struct {
	// Mode is native or generic (the kernel guard; generic when any
	// interface runs generic XDP), userspace, or off.
	Mode string `json:"mode"`
	// Why the mode was chosen: the reason for a fallback, or the setting.
	Why        string           `json:"why"`
	Interfaces []GuardInterface `json:"interfaces"`
	Ports      []uint16         `json:"ports"`
	PinPath    string           `json:"pin_path,omitempty"`
	Cgroup     string           `json:"cgroup,omitempty"`
	Counters   GuardCounters    `json:"counters"`
	TopBySYN   []GuardSource    `json:"top_by_syn"`
	TopByDrops []GuardSource    `json:"top_by_drops"`
	Deny       []GuardDenyEntry `json:"deny"`
	Allow      []string         `json:"allow"`
	// Escalations is how many rate limit offenders this process denied.
	Escalations uint64 `json:"escalations"`
}

// GuardInterface is one interface the XDP program is attached to.
type GuardInterface struct {
	Name string `json:"name"`
	Mode string `json:"mode"` // native or generic
}

// GuardCounters are the guard's packet counters (kernel) or connection
// counters (user space). Dropped is keyed by reason: deny, syn_rate,
// conn_cap, pps (the kernel's); deny and syn_rate (user space, where
// syn_rate counts connections over the rate and the connection cap is
// counted by edgeloop_limit_*).
type GuardCounters struct {
	Passed       uint64            `json:"passed"`
	Allowed      uint64            `json:"allowed"`
	Skipped      uint64            `json:"skipped"`
	ParseErrors  uint64            `json:"parse_errors"`
	Dropped      map[string]uint64 `json:"dropped"`
	DroppedTotal uint64            `json:"dropped_total"`
}

// GuardSource is one source address as the XDP program saw it.
type GuardSource struct {
	Addr     string    `json:"addr"`
	SYNs     uint64    `json:"syns"`
	Drops    uint64    `json:"drops"`
	Conns    uint64    `json:"conns"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// GuardDenyEntry is one deny list entry; Expires is absent for entries
// that stay until removed.
type GuardDenyEntry struct {
	CIDR    string     `json:"cidr"`
	Expires *time.Time `json:"expires,omitempty"`
	TTL     string     `json:"ttl,omitempty"` // time left, e.g. "59.2s"
}

// GuardRequest is the body of POST /guard/deny, /guard/undeny,
// /guard/allow and /guard/unallow: a CIDR (an address means /32 or /128)
// and, for deny, how long ("10m"; empty or "0": until undenied).
type GuardRequest struct {
	CIDR string `json:"cidr"`
	For  string `json:"for,omitempty"`
}

// guardAdmin registers the guard endpoints on the admin listener.
func (s *Server) guardAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /guard/status", s.guardStatusHandler)
	mux.HandleFunc("POST /guard/deny", s.guardListHandler(guardDeny))
	mux.HandleFunc("DELETE /guard/deny", s.guardListHandler(guardUndeny))
	mux.HandleFunc("POST /guard/undeny", s.guardListHandler(guardUndeny))
	mux.HandleFunc("POST /guard/allow", s.guardListHandler(guardAllow))
	mux.HandleFunc("DELETE /guard/allow", s.guardListHandler(guardUnallow))
	mux.HandleFunc("POST /guard/unallow", s.guardListHandler(guardUnallow))
}

// status gathers the guard's state at now.
func (g *guardState) status(now time.Time) (GuardStatus, error) {
	st := GuardStatus{
		Mode: g.mode, Why: g.why, Interfaces: g.interfaces, Ports: g.ports,
		Cgroup: g.cgroup, Escalations: g.escalations.Load(),
		Counters:   GuardCounters{Dropped: map[string]uint64{}},
		TopBySYN:   []GuardSource{},
		TopByDrops: []GuardSource{},
		Deny:       []GuardDenyEntry{},
		Allow:      []string{},
	}
	if st.Interfaces == nil {
		st.Interfaces = []GuardInterface{}
	}
	switch {
	case g.kern != nil:
		st.PinPath = g.pinPath
		return st, g.kernelStatus(&st, now)
	case g.user != nil:
		u := g.user
		c := &st.Counters
		c.Passed = u.accepted.Load()
		c.Dropped["deny"] = u.refusedDeny.Load()
		c.Dropped["syn_rate"] = u.refusedRate.Load()
		c.DroppedTotal = c.Dropped["deny"] + c.Dropped["syn_rate"]
		for _, e := range u.deny.list(now) {
			st.Deny = append(st.Deny, denyEntry(e.Prefix, e.Expires, now))
		}
		for _, e := range u.allow.list(now) {
			st.Allow = append(st.Allow, e.Prefix.String())
		}
	}
	return st, nil
}

func (g *guardState) kernelStatus(st *GuardStatus, now time.Time) error {
	s, err := g.kern.Stats()
	if err != nil {
		return err
	}
	st.Counters = GuardCounters{
		Passed: s.Passed, Allowed: s.Allowed, Skipped: s.Skipped, ParseErrors: s.ParseErrors,
		Dropped: map[string]uint64{
			"deny": s.DroppedDeny, "syn_rate": s.DroppedSYNRate,
			"conn_cap": s.DroppedConnCap, "pps": s.DroppedPPS,
		},
		DroppedTotal: s.Dropped(),
	}
	for _, r := range []struct {
		by  bpf.Rank
		out *[]GuardSource
	}{{bpf.BySYNs, &st.TopBySYN}, {bpf.ByDrops, &st.TopByDrops}} {
		top, err := g.kern.TopSources(topSources, r.by)
		if err != nil {
			return err
		}
		for _, src := range top {
			*r.out = append(*r.out, GuardSource{
				Addr: src.Addr.String(), SYNs: src.SYNs, Drops: src.Drops,
				Conns: src.Conns, LastSeen: src.LastSeen.UTC(),
			})
		}
	}
	deny, err := g.kern.DenyList()
	if err != nil {
		return err
	}
	for _, d := range deny {
		st.Deny = append(st.Deny, denyEntry(d.Prefix, d.Expires, now))
	}
	allow, err := g.kern.AllowList()
	if err != nil {
		return err
	}
	for _, p := range allow {
		st.Allow = append(st.Allow, p.String())
	}
	return nil
}

func denyEntry(p netip.Prefix, expires, now time.Time) GuardDenyEntry {
	e := GuardDenyEntry{CIDR: p.String()}
	if !expires.IsZero() {
		t := expires.UTC().Truncate(time.Millisecond)
		e.Expires = &t
		e.TTL = expires.Sub(now).Round(100 * time.Millisecond).String()
	}
	return e
}

func (s *Server) guardStatusHandler(w http.ResponseWriter, _ *http.Request) {
	g := s.guard
	if g == nil {
		g = &guardState{mode: guardOff, why: "guard not set up (server not listening)", now: time.Now}
	}
	st, err := g.status(g.now())
	if err != nil {
		guardJSONError(w, http.StatusInternalServerError, "read guard state: "+err.Error())
		return
	}
	guardJSON(w, http.StatusOK, st)
}

// guardOp is one list change of the admin API.
type guardOp int

const (
	guardDeny guardOp = iota
	guardUndeny
	guardAllow
	guardUnallow
)

// Errors of the guard's admin API.
var (
	errGuardOff    = errors.New("the guard is off (guard.mode: off)")
	errGuardPrefix = errors.New("bad cidr (want e.g. 192.0.2.0/24, 2001:db8::/48 or an address)")
	errGuardFor    = errors.New(`bad "for" (want a duration such as 90s or 10m, or 0 for no expiry)`)
)

// maxGuardRequest bounds an admin request body: a CIDR and a duration.
const maxGuardRequest = 4 << 10

func (s *Server) guardListHandler(op guardOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readGuardRequest(r)
		if err != nil {
			guardJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		p, err := ParseGuardPrefix(req.CIDR)
		if err != nil {
			guardJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		var ttl time.Duration
		if op == guardDeny {
			if ttl, err = ParseGuardTTL(req.For); err != nil {
				guardJSONError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		g := s.guard
		if g == nil || (g.kern == nil && g.user == nil) {
			guardJSONError(w, http.StatusConflict, errGuardOff.Error())
			return
		}
		code, err := g.apply(op, p, ttl)
		if err != nil {
			guardJSONError(w, code, err.Error())
			return
		}
		resp := map[string]any{"ok": true, "cidr": p.String()}
		if op == guardDeny && ttl > 0 {
			resp["expires"] = g.now().Add(ttl).UTC().Truncate(time.Millisecond)
		}
		s.log.Info("guard: admin "+[...]string{"deny", "undeny", "allow", "unallow"}[op],
			"cidr", p.String(), "for", ttl.String())
		guardJSON(w, http.StatusOK, resp)
	}
}

// apply makes one list change and returns the HTTP status for its error.
func (g *guardState) apply(op guardOp, p netip.Prefix, ttl time.Duration) (int, error) {
	if g.kern != nil {
		var err error
		switch op {
		case guardDeny:
			err = g.kern.Deny(p, ttl)
		case guardUndeny:
			err = g.kern.Undeny(p)
		case guardAllow:
			err = g.kern.Allow(p)
		case guardUnallow:
			err = g.kern.Unallow(p)
		}
		switch {
		case err == nil:
			return http.StatusOK, nil
		case errors.Is(err, bpf.ErrNotFound):
			return http.StatusNotFound, fmt.Errorf("%s is not listed", p)
		case errors.Is(err, bpf.ErrListFull):
			return http.StatusInsufficientStorage, err
		default:
			return http.StatusInternalServerError, err
		}
	}
	u := g.user
	found := true
	switch op {
	case guardDeny:
		var exp time.Time
		if ttl > 0 {
			exp = g.now().Add(ttl)
		}
		u.deny.add(p, exp)
	case guardUndeny:
		found = u.deny.remove(p)
	case guardAllow:
		u.allow.add(p, time.Time{})
	case guardUnallow:
		found = u.allow.remove(p)
	}
	if !found {
		return http.StatusNotFound, fmt.Errorf("%s is not listed", p)
	}
	return http.StatusOK, nil
}

// readGuardRequest reads a JSON GuardRequest body; DELETE requests (and
// POSTs without a body) may give the CIDR as ?cidr= instead.
func readGuardRequest(r *http.Request) (GuardRequest, error) {
	var req GuardRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxGuardRequest+1))
	if err != nil {
		return req, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxGuardRequest {
		return req, errors.New("request body too large")
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, fmt.Errorf(`bad JSON body (want {"cidr": "...", "for": "10m"}): %v`, err)
		}
	}
	if req.CIDR == "" {
		req.CIDR = r.URL.Query().Get("cidr")
	}
	if req.For == "" {
		req.For = r.URL.Query().Get("for")
	}
	if req.CIDR == "" {
		return req, errors.New(`missing "cidr"`)
	}
	return req, nil
}

// ParseGuardPrefix parses a CIDR or a single address (taken as /32 or
// /128), IPv4-mapped IPv6 unmapped, host bits cleared.
func ParseGuardPrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%w: %q", errGuardPrefix, s)
		}
		return normPrefix(p), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%w: %q", errGuardPrefix, s)
}

// ParseGuardTTL parses a deny duration: empty or "0" is no expiry.
func ParseGuardTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: %q", errGuardFor, s)
	}
	return d, nil
}

func guardJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func guardJSONError(w http.ResponseWriter, code int, msg string) {
	guardJSON(w, code, map[string]string{"error": msg})
}
