package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPrefixSet(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var s prefixSet
	s.add(netip.MustParsePrefix("192.0.2.77/24"), time.Time{}) // masked to /24
	s.add(netip.MustParsePrefix("2001:db8::/48"), t0.Add(10*time.Second))
	s.add(netip.MustParsePrefix("::ffff:198.51.100.7/128"), t0.Add(5*time.Second)) // unmapped to /32

	steps := []struct {
		ip   string
		at   time.Duration
		want bool
	}{
		{"192.0.2.1", 0, true},
		{"192.0.2.255", time.Hour, true}, // no expiry
		{"192.0.3.1", 0, false},
		{"::ffff:192.0.2.9", 0, true}, // mapped address, IPv4 entry
		{"2001:db8:0:ffff::1", 9 * time.Second, true},
		{"2001:db8:0:ffff::1", 10 * time.Second, false}, // expiry is exclusive
		{"2001:db8:1::1", 0, false},
		{"198.51.100.7", 4 * time.Second, true},
		{"198.51.100.7", 5 * time.Second, false},
		{"198.51.100.8", 0, false},
		{"", 0, false}, // the zero Addr
	}
	for _, st := range steps {
		var ip netip.Addr
		if st.ip != "" {
			ip = netip.MustParseAddr(st.ip)
		}
		if got := s.contains(ip, t0.Add(st.at)); got != st.want {
			t.Errorf("contains(%s, +%v) = %v, want %v", st.ip, st.at, got, st.want)
		}
	}

	// list sweeps what expired and sorts the rest.
	got := s.list(t0.Add(6 * time.Second))
	want := []prefixEntry{
		{netip.MustParsePrefix("192.0.2.0/24"), time.Time{}},
		{netip.MustParsePrefix("2001:db8::/48"), t0.Add(10 * time.Second)},
	}
	if !slices.Equal(got, want) {
		t.Errorf("list = %v, want %v", got, want)
	}
	if n := s.n.Load(); n != 2 {
		t.Errorf("entries after sweep = %d, want 2", n)
	}
	if !s.remove(netip.MustParsePrefix("192.0.2.0/24")) || s.remove(netip.MustParsePrefix("192.0.2.0/24")) {
		t.Error("remove: want true once, then false")
	}
	if s.contains(netip.MustParseAddr("192.0.2.1"), t0) {
		t.Error("removed prefix still matches")
	}
	// Replacing an entry changes its expiry and does not double count.
	s.add(netip.MustParsePrefix("2001:db8::/48"), time.Time{})
	if n := s.n.Load(); n != 1 || !s.contains(netip.MustParseAddr("2001:db8::1"), t0.Add(time.Hour)) {
		t.Errorf("after re-add: n = %d, want 1 and no expiry", n)
	}
}

func TestGuardPorts(t *testing.T) {
	f := func(listen []string, want []uint16, wantErr error) {
		t.Helper()
		got, err := guardPorts(listen)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Errorf("guardPorts(%q) error = %v, want %v", listen, err, wantErr)
			}
			return
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("guardPorts(%q) = %v, %v; want %v", listen, got, err, want)
		}
	}
	f([]string{":18100"}, []uint16{18100}, nil)
	f([]string{"10.0.0.1:80", "[::1]:80", "127.0.0.1:443"}, []uint16{80, 443}, nil)
	f([]string{"127.0.0.1:http"}, []uint16{80}, nil)
	f([]string{"127.0.0.1:0"}, nil, errEphemeralPort)
}

func TestGuardInterfaces(t *testing.T) {
	ifs := []ifaceInfo{
		{name: "lo", up: true, loopback: true, addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}},
		{name: "eth0", up: true, addrs: []netip.Addr{netip.MustParseAddr("10.78.0.1"), netip.MustParseAddr("2001:db8::1")}},
		{name: "eth1", up: false, addrs: []netip.Addr{netip.MustParseAddr("10.79.0.1")}},
		{name: "dummy0", up: true},
	}
	f := func(listen []string, want ...string) {
		t.Helper()
		got, err := guardInterfaces(context.Background(), listen, ifs)
		if len(want) == 0 {
			if err == nil {
				t.Errorf("guardInterfaces(%q) = %v, want an error", listen, got)
			}
			return
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("guardInterfaces(%q) = %v, %v; want %v", listen, got, err, want)
		}
	}
	f([]string{":80"}, "lo", "eth0")
	f([]string{"0.0.0.0:80"}, "lo", "eth0")
	f([]string{"[::]:80"}, "lo", "eth0")
	f([]string{"10.78.0.1:80"}, "eth0")
	f([]string{"[2001:db8::1]:80", "127.0.0.1:81"}, "eth0", "lo")
	f([]string{"127.0.0.5:80"}, "lo") // the whole 127/8 is lo's
	f([]string{"192.0.2.1:80"})       // nobody has it
}

func TestParseGuardInput(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":            "10.0.0.1/32",
		"10.0.0.1/8":          "10.0.0.0/8",
		" 2001:db8::1 ":       "2001:db8::1/128",
		"::ffff:10.1.2.3":     "10.1.2.3/32",
		"::ffff:10.1.2.0/120": "10.1.2.0/24",
	} {
		p, err := ParseGuardPrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseGuardPrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "example.com", "fe80::1%eth0", "10.0.0.0/-1"} {
		if _, err := ParseGuardPrefix(bad); err == nil {
			t.Errorf("ParseGuardPrefix(%q) succeeded", bad)
		}
	}
	for in, want := range map[string]time.Duration{"": 0, "0": 0, "90s": 90 * time.Second, "10m": 10 * time.Minute} {
		if d, err := ParseGuardTTL(in); err != nil || d != want {
			t.Errorf("ParseGuardTTL(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, bad := range []string{"-1s", "ten", "5"} {
		if _, err := ParseGuardTTL(bad); err == nil {
			t.Errorf("ParseGuardTTL(%q) succeeded", bad)
		}
	}
}

// newUserspaceServer builds a server in guard mode userspace and sets up
// its guard (no sockets: Listen is not called).
func newUserspaceServer(t *testing.T, yaml string) (*Server, *time.Time) {
	t.Helper()
	cfg, err := parseConfigString(yaml)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.setupGuard(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.closeGuard)
	now := time.Unix(2_000_000, 0)
	s.guard.now = func() time.Time { return now }
	return s, &now
}

func parseConfigString(y string) (*Config, error) {
	cfg, err := Parse("guard.yaml", []byte(y))
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func TestUserGuardRefuse(t *testing.T) {
	s, _ := newUserspaceServer(t, `
listen: ["127.0.0.1:18999"]
guard:
  mode: userspace
  syn_rate: 1/m
  syn_burst: 2
  allow: [10.1.0.0/16]
  deny: [10.0.0.0/8]
`)
	u := s.guard.user
	t0 := time.Unix(3_000_000, 0)
	f := func(ip string, want bool) {
		t.Helper()
		if got := u.refuse(netip.MustParseAddr(ip), t0); got != want {
			t.Errorf("refuse(%s) = %v, want %v", ip, got, want)
		}
	}
	f("10.2.3.4", true)   // denied
	f("10.1.3.4", false)  // allow wins over deny
	f("192.0.2.1", false) // burst 2
	f("192.0.2.1", false) //
	f("192.0.2.1", true)  // over the connection rate
	f("192.0.2.2", false) // another source
	f("10.1.3.4", false)  // allowed: never rate limited
	f("10.1.3.4", false)  //
	f("10.1.3.4", false)  //
	if d, r := u.refusedDeny.Load(), u.refusedRate.Load(); d != 1 || r != 1 {
		t.Errorf("refused deny %d rate %d, want 1 and 1", d, r)
	}
	if !s.guardRefusesAddr(&netAddr{"10.9.9.9:1234"}) {
		t.Error("guardRefusesAddr(10.9.9.9) = false, want refused")
	}
}

type netAddr struct{ s string }

func (a *netAddr) Network() string { return "tcp" }
func (a *netAddr) String() string  { return a.s }

func TestGuardEscalateUserspace(t *testing.T) {
	s, now := newUserspaceServer(t, `
listen: ["127.0.0.1:18999"]
guard: {mode: userspace, escalate: {ban: 30s}}
`)
	g := s.guard
	ip := netip.MustParseAddr("2001:db8:1:2:3:4:5:6")
	g.escalate(ip) // synchronously, as escalateLoop does
	// The rate limiter keys IPv6 by /64: the whole /64 is denied.
	if !g.user.refuse(netip.MustParseAddr("2001:db8:1:2::99"), *now) {
		t.Error("the offender's /64 is not refused")
	}
	if g.user.refuse(netip.MustParseAddr("2001:db8:1:3::1"), *now) {
		t.Error("a neighbouring /64 is refused")
	}
	if g.user.refuse(ip, now.Add(30*time.Second)) {
		t.Error("still refused when the ban is over")
	}
	if g.escalations.Load() != 1 {
		t.Errorf("escalations = %d, want 1", g.escalations.Load())
	}

	// onOffender only queues: the loop picks it up.
	s.onOffender(netip.MustParseAddr("192.0.2.7"))
	deadline := time.Now().Add(5 * time.Second)
	for g.escalations.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !g.user.refuse(netip.MustParseAddr("192.0.2.7"), *now) {
		t.Error("queued offender not denied")
	}
}

func TestGuardAdminUserspace(t *testing.T) {
	s, now := newUserspaceServer(t, `
listen: ["127.0.0.1:18999"]
guard: {mode: userspace, deny: [198.51.100.0/24]}
`)
	mux := http.NewServeMux()
	s.guardAdmin(mux)
	do := func(method, target, body string) (int, map[string]any) {
		t.Helper()
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, target, w.Body, err)
		}
		return w.Code, m
	}
	steps := []struct {
		method, target, body string
		code                 int
		errHas               string
	}{
		{"POST", "/guard/deny", `{"cidr": "192.0.2.0/24", "for": "10m"}`, 200, ""},
		{"POST", "/guard/deny", `{"cidr": "2001:db8::1"}`, 200, ""},
		{"POST", "/guard/deny", `{"cidr": "192.0.2.0/33"}`, 400, "bad cidr"},
		{"POST", "/guard/deny", `{"cidr": "192.0.2.0/24", "for": "-1m"}`, 400, `bad "for"`},
		{"POST", "/guard/deny", `{"cidr": "192.0.2.0/24", "ttl": "1m"}`, 400, "unknown field"},
		{"POST", "/guard/deny", `{`, 400, "bad JSON"},
		{"POST", "/guard/deny", ``, 400, `missing "cidr"`},
		{"POST", "/guard/allow", `{"cidr": "192.0.2.5"}`, 200, ""},
		{"DELETE", "/guard/deny?cidr=2001:db8::1", ``, 200, ""},
		{"POST", "/guard/undeny", `{"cidr": "2001:db8::1"}`, 404, "not listed"},
		{"POST", "/guard/unallow", `{"cidr": "203.0.113.0/24"}`, 404, "not listed"},
	}
	for _, st := range steps {
		code, m := do(st.method, st.target, st.body)
		if code != st.code {
			t.Errorf("%s %s %s: %d %v, want %d", st.method, st.target, st.body, code, m, st.code)
			continue
		}
		if e, _ := m["error"].(string); !strings.Contains(e, st.errHas) {
			t.Errorf("%s %s %s: error %q, want it to contain %q", st.method, st.target, st.body, e, st.errHas)
		}
	}

	r := httptest.NewRequest("GET", "/guard/status", nil)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	var st GuardStatus
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != "userspace" || st.Why != "guard.mode is userspace" {
		t.Errorf("mode %q why %q", st.Mode, st.Why)
	}
	var deny []string
	for _, d := range st.Deny {
		deny = append(deny, d.CIDR)
		if d.CIDR == "192.0.2.0/24" && (d.Expires == nil || d.TTL == "") {
			t.Errorf("deny entry %+v: want an expiry", d)
		}
	}
	if !slices.Equal(deny, []string{"192.0.2.0/24", "198.51.100.0/24"}) {
		t.Errorf("deny list %v", deny)
	}
	if !slices.Equal(st.Allow, []string{"192.0.2.5/32"}) {
		t.Errorf("allow list %v", st.Allow)
	}
	// The allow entry wins for its address only.
	u := s.guard.user
	if u.refuse(netip.MustParseAddr("192.0.2.5"), *now) || !u.refuse(netip.MustParseAddr("192.0.2.6"), *now) {
		t.Error("allow 192.0.2.5 inside denied 192.0.2.0/24: want .5 admitted, .6 refused")
	}
}

func TestGuardAdminOff(t *testing.T) {
	s, _ := newUserspaceServer(t, `
listen: ["127.0.0.1:18999"]
guard: {mode: "off"}
`)
	mux := http.NewServeMux()
	s.guardAdmin(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/guard/deny", strings.NewReader(`{"cidr":"192.0.2.1"}`)))
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "guard is off") {
		t.Errorf("deny with the guard off: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/guard/status", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"mode": "off"`) {
		t.Errorf("status with the guard off: %d %s", w.Code, w.Body)
	}
	s.onOffender(netip.MustParseAddr("192.0.2.1")) // no queue: must not block or panic
	if s.guardRefuses(netip.MustParseAddr("192.0.2.1")) {
		t.Error("guard off refuses")
	}
}
