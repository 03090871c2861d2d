package cache

import (
	"testing"
	"time"
)

func TestFreshnessLifetime(t *testing.T) {
	date := t0
	for _, tc := range []struct {
		name     string
		hdrs     []string
		status   int
		defTTL   time.Duration
		want     time.Duration
		src      lifetimeSource
		targeted bool
	}{
		{"s-maxage over max-age", []string{"Cache-Control", "max-age=60, s-maxage=30"}, 200, 0, 30 * time.Second, srcExplicit, false},
		{"max-age over Expires", []string{"Cache-Control", "max-age=60", "Expires", httpDate(date.Add(time.Hour))}, 200, 0, time.Minute, srcExplicit, false},
		{"Expires minus Date", []string{"Expires", httpDate(date.Add(2 * time.Minute))}, 200, 0, 2 * time.Minute, srcExplicit, false},
		{"Expires in the past", []string{"Expires", httpDate(date.Add(-time.Minute))}, 200, 0, 0, srcExplicit, false},
		{"invalid Expires is stale", []string{"Expires", "0"}, 200, 0, 0, srcExplicit, false},
		{"invalid Expires beats heuristic", []string{"Expires", "-1", "Last-Modified", httpDate(date.Add(-100 * time.Hour))}, 200, 0, 0, srcExplicit, false},
		{"heuristic 10%", []string{"Last-Modified", httpDate(date.Add(-10 * time.Hour))}, 200, 0, time.Hour, srcHeuristic, false},
		{"heuristic capped 24h", []string{"Last-Modified", httpDate(date.Add(-1000 * time.Hour))}, 200, 0, 24 * time.Hour, srcHeuristic, false},
		{"heuristic before default TTL", []string{"Last-Modified", httpDate(date.Add(-10 * time.Hour))}, 200, 300 * time.Second, time.Hour, srcHeuristic, false},
		{"no heuristic for 302", []string{"Last-Modified", httpDate(date.Add(-10 * time.Hour))}, 302, 0, 0, srcNone, false},
		{"heuristic for 302 with public", []string{"Cache-Control", "public", "Last-Modified", httpDate(date.Add(-10 * time.Hour))}, 302, 0, time.Hour, srcHeuristic, false},
		{"default TTL 404", nil, 404, 300 * time.Second, 300 * time.Second, srcDefault, false},
		{"no default TTL for 410", nil, 410, 300 * time.Second, 0, srcNone, false},
		{"nothing", nil, 200, 0, 0, srcNone, false},
		{"CDN-Cache-Control wins", []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", "max-age=600"}, 200, 0, 10 * time.Minute, srcExplicit, true},
		{"targeted ignores Expires", []string{"CDN-Cache-Control", "no-cache", "Expires", httpDate(date.Add(time.Hour)), "Last-Modified", httpDate(date.Add(-10 * time.Hour))}, 200, 0, time.Hour, srcHeuristic, true},
		{"Edgeloop-Cache-Control over CDN", []string{"Edgeloop-Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=600"}, 200, 0, 5 * time.Second, srcExplicit, true},
		{"invalid targeted falls back", []string{"CDN-Cache-Control", "max-age=x", "Cache-Control", "max-age=7"}, 200, 0, 7 * time.Second, srcExplicit, false},
	} {
		fs := []field{{[]byte("Date"), []byte(httpDate(date))}}
		for i := 0; i+1 < len(tc.hdrs); i += 2 {
			fs = append(fs, field{[]byte(tc.hdrs[i]), []byte(tc.hdrs[i+1])})
		}
		p := policyOf(fs, tc.status, date, date, tc.defTTL)
		if p.lifetime != tc.want || p.src != tc.src || p.targeted != tc.targeted {
			t.Errorf("%s: lifetime %v src %d targeted %v, want %v %d %v", tc.name, p.lifetime, p.src, p.targeted, tc.want, tc.src, tc.targeted)
		}
	}
}

func TestInitialAge(t *testing.T) {
	for _, tc := range []struct {
		name            string
		date            time.Time
		age             time.Duration
		reqTime, respAt time.Duration // offsets from t0
		want            time.Duration
	}{
		{"fresh from origin", t0, 0, 0, 0, 0},
		{"response delay counts", t0, 0, 0, 2 * time.Second, 2 * time.Second},
		{"Age plus delay", t0, 30 * time.Second, 0, time.Second, 31 * time.Second},
		{"apparent age from Date", t0.Add(-50 * time.Second), 10 * time.Second, 0, time.Second, 50*time.Second + time.Second},
		{"clock skew: Date in future", t0.Add(time.Hour), 0, 0, 0, 0},
		{"no Date", time.Time{}, 5 * time.Second, 0, 0, 5 * time.Second},
	} {
		rt := respTimes{date: tc.date, ageValue: tc.age}
		if tc.name == "apparent age from Date" {
			// apparent = respTime - date = 51s > corrected = 10s + 1s
			tc.want = 51 * time.Second
		}
		if got := initialAge(&rt, t0.Add(tc.reqTime), t0.Add(tc.respAt)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDecideSteps walks stored responses through time with request directives.
func TestDecideSteps(t *testing.T) {
	type step struct {
		at     time.Duration // since response time
		reqCC  string
		kind   decisionKind
		byReq  bool
		onErr  bool
		ageSec int64
	}
	sec := int64(time.Second)
	for _, tc := range []struct {
		name  string
		f     freshness
		grace time.Duration
		steps []step
	}{
		{"max-age=60 with Age 10", freshness{initialAge: 10 * sec, lifetime: 60 * sec, swr: -1, sie: -1}, 0, []step{
			{0, "", decHit, false, true, 10}, // fresh: usable if a forced revalidation fails
			{49 * time.Second, "", decHit, false, true, 59},
			{50 * time.Second, "", decRevalidate, false, true, 60}, // staleness 0 <= grace 0
			{51 * time.Second, "", decRevalidate, false, false, 61},
		}},
		{"request directives", freshness{lifetime: 100 * sec, swr: -1, sie: -1}, 0, []step{
			{10 * time.Second, "no-cache", decRevalidate, true, true, 10},
			{10 * time.Second, "max-age=5", decRevalidate, true, true, 10},
			{10 * time.Second, "max-age=10", decHit, false, true, 10},
			{10 * time.Second, "min-fresh=95", decRevalidate, true, true, 10},
			{10 * time.Second, "min-fresh=90", decHit, false, true, 10},
			{110 * time.Second, "max-stale=5", decRevalidate, false, false, 110},
			{110 * time.Second, "max-stale=10", decHit, false, false, 110},
			{500 * time.Second, "max-stale", decHit, false, false, 500},
		}},
		{"stale-while-revalidate=30", freshness{lifetime: 60 * sec, swr: 30 * sec, sie: -1}, 0, []step{
			{59 * time.Second, "", decHit, false, true, 59},
			{61 * time.Second, "", decSWR, false, false, 61},
			{90 * time.Second, "", decSWR, false, false, 90},
			{91 * time.Second, "", decRevalidate, false, false, 91},
		}},
		{"stale-if-error=100 and grace 200", freshness{lifetime: 60 * sec, swr: -1, sie: 100 * sec}, 200 * time.Second, []step{
			{100 * time.Second, "", decRevalidate, false, true, 100},
			{260 * time.Second, "", decRevalidate, false, true, 260},
			{261 * time.Second, "", decRevalidate, false, false, 261},
		}},
		{"must-revalidate forbids stale", freshness{lifetime: 60 * sec, swr: 30 * sec, sie: 100 * sec, noStale: true}, time.Hour, []step{
			{30 * time.Second, "", decHit, false, false, 30},
			{61 * time.Second, "", decRevalidate, false, false, 61},
			{61 * time.Second, "max-stale", decRevalidate, false, false, 61},
		}},
		{"response no-cache", freshness{lifetime: 60 * sec, swr: -1, sie: -1, noCache: true}, 0, []step{
			{0, "", decRevalidate, false, true, 0},
		}},
	} {
		for i, s := range tc.steps {
			var rd Directives
			rd.Reset()
			rd.Parse([]byte(s.reqCC))
			d := decide(&tc.f, &rd, rd.Has(FlagNoCache), time.Unix(0, tc.f.respTime).Add(s.at), tc.grace)
			if d.kind != s.kind || d.byRequest != s.byReq || d.staleOnError != s.onErr || int64(d.age/time.Second) != s.ageSec {
				t.Errorf("%s step %d (%v, %q): kind %d byReq %v onErr %v age %v; want %d %v %v %ds",
					tc.name, i, s.at, s.reqCC, d.kind, d.byRequest, d.staleOnError, d.age, s.kind, s.byReq, s.onErr, s.ageSec)
			}
		}
	}
}

func TestParseHTTPDate(t *testing.T) {
	f := func(in string, want time.Time) {
		t.Helper()
		if got := parseHTTPDate([]byte(in)); !got.Equal(want) {
			t.Errorf("parseHTTPDate(%q) = %v, want %v", in, got, want)
		}
	}
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	f("Sun, 06 Nov 1994 08:49:37 GMT", want)
	f("Sunday, 06-Nov-94 08:49:37 GMT", want)
	f("Sun Nov  6 08:49:37 1994", want)
	f("0", time.Time{})
	f("Sun, 06 Foo 1994 08:49:37 GMT", time.Time{})
	f("", time.Time{})
}
