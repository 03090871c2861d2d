package cache

import (
	"net/http"
	"time"
)

// Freshness model (RFC 9111 §4.2).
//
// At store time the cache records the response time, the corrected initial
// age (§4.2.3) and the freshness lifetime (§4.2.1); at lookup
//
//	current_age = corrected_initial_age + (now - response_time)
//	fresh       = freshness_lifetime > current_age
//
// The freshness lifetime comes from the first of (edgeloop's precedence,
// a shared cache throughout):
//
//  1. s-maxage, then max-age, from Edgeloop-Cache-Control or
//     CDN-Cache-Control when either is present and valid (RFC 9213 §2.1:
//     Cache-Control and Expires are then ignored), else from Cache-Control;
//  2. Expires - Date (an invalid Expires means already stale, §5.3);
//  3. heuristic: 10% of Date - Last-Modified, capped at 24h (§4.2.2), for
//     heuristically cacheable status codes or "public";
//  4. the route's default TTL (nginx proxy_cache_valid style), only when
//     the route opts in and only for 200, 301 and 404.
//
// Otherwise the lifetime is 0: the response is stored only when it has a
// validator, and every use revalidates.

const (
	heuristicFraction = 10 // percent of Date - Last-Modified
	heuristicCap      = 24 * time.Hour
)

// lifetimeSource says where a freshness lifetime came from (for Cache-Status).
type lifetimeSource uint8

const (
	srcNone lifetimeSource = iota
	srcExplicit
	srcHeuristic
	srcDefault
)

// respTimes are the time-related fields of a response, parsed once at store.
type respTimes struct {
	date, expires, lastModified time.Time // zero when absent
	expiresPresent              bool
	ageValue                    time.Duration // Age header, 0 when absent/invalid
}

// freshnessLifetime implements the precedence above.
func freshnessLifetime(d *Directives, targeted bool, t *respTimes, status int, respTime time.Time, defaultTTL time.Duration) (time.Duration, lifetimeSource) {
	switch {
	case d.SMaxAge >= 0:
		return time.Duration(d.SMaxAge) * time.Second, srcExplicit
	case d.MaxAge >= 0:
		return time.Duration(d.MaxAge) * time.Second, srcExplicit
	case t.expiresPresent && !targeted:
		if t.expires.IsZero() {
			return 0, srcExplicit // invalid Expires: stale (§5.3)
		}
		date := t.date
		if date.IsZero() {
			date = respTime
		}
		if lt := t.expires.Sub(date); lt > 0 {
			return lt, srcExplicit
		}
		return 0, srcExplicit
	}
	if !t.lastModified.IsZero() && (heuristicStatus(status) || d.Has(FlagPublic)) {
		date := t.date
		if date.IsZero() {
			date = respTime
		}
		lt := date.Sub(t.lastModified) * heuristicFraction / 100
		if lt > heuristicCap {
			lt = heuristicCap
		}
		if lt > 0 {
			return lt, srcHeuristic
		}
	}
	if defaultTTL > 0 && (status == 200 || status == 301 || status == 404) {
		return defaultTTL, srcDefault
	}
	return 0, srcNone
}

// heuristicStatus lists the status codes that are heuristically cacheable
// (RFC 9110 §15.1). 206 is left out: edgeloop does not store ranges.
func heuristicStatus(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// initialAge is corrected_initial_age of RFC 9111 §4.2.3.
func initialAge(t *respTimes, reqTime, respTime time.Time) time.Duration {
	apparent := time.Duration(0)
	if !t.date.IsZero() {
		if a := respTime.Sub(t.date); a > 0 {
			apparent = a
		}
	}
	delay := respTime.Sub(reqTime)
	if delay < 0 {
		delay = 0
	}
	corrected := t.ageValue + delay
	if apparent > corrected {
		return apparent
	}
	return corrected
}

// freshness is what the cache keeps per entry to decide at lookup.
type freshness struct {
	respTime   int64 // unix nanoseconds
	initialAge int64 // nanoseconds
	lifetime   int64 // nanoseconds
	swr        int64 // stale-while-revalidate, nanoseconds; -1 absent
	sie        int64 // stale-if-error, nanoseconds; -1 absent
	noCache    bool  // response no-cache: validate on every use (§5.2.2.4)
	noStale    bool  // must-revalidate, proxy-revalidate or s-maxage (§4.2.4, §5.2.2.10)
}

// age is current_age at now (§4.2.3).
func (f *freshness) age(now time.Time) time.Duration {
	resident := now.UnixNano() - f.respTime
	if resident < 0 {
		resident = 0
	}
	return time.Duration(f.initialAge + resident)
}

// decisionKind is what the freshness rules allow for a stored response.
type decisionKind uint8

const (
	decHit        decisionKind = iota // fresh (or stale within the client's max-stale)
	decSWR                            // stale within stale-while-revalidate: serve, refresh in background
	decRevalidate                     // forward a conditional request
)

type decision struct {
	kind         decisionKind
	age, ttl     time.Duration // ttl = lifetime - age, negative when stale
	byRequest    bool          // the client's directives forced the forward (fwd=request)
	staleOnError bool          // may be served if the origin fails (stale-if-error / route grace)
	maxStale     bool          // served stale under the client's max-stale
}

// decide applies RFC 9111 §4.2, §4.2.4, §5.2.1 and RFC 5861 to a stored
// response for a request with directives rd (reqNoCache includes Pragma).
// grace is the route's stale-if-error allowance.
func decide(f *freshness, rd *Directives, reqNoCache bool, now time.Time, grace time.Duration) decision {
	age := f.age(now)
	d := decision{age: age, ttl: time.Duration(f.lifetime) - age}
	staleness := -d.ttl
	if !f.noStale {
		win := grace
		if sie := time.Duration(f.sie); sie > win {
			win = sie
		}
		d.staleOnError = staleness <= win
	}
	switch {
	case reqNoCache:
		d.kind, d.byRequest = decRevalidate, true
		return d
	case f.noCache:
		d.kind = decRevalidate
		return d
	case rd.MaxAge >= 0 && age > time.Duration(rd.MaxAge)*time.Second,
		rd.MinFresh >= 0 && d.ttl < time.Duration(rd.MinFresh)*time.Second:
		d.kind, d.byRequest = decRevalidate, true
		return d
	case d.ttl > 0:
		d.kind = decHit
		return d
	}
	if !f.noStale {
		if rd.Has(FlagMaxStaleAny) || (rd.MaxStale >= 0 && staleness <= time.Duration(rd.MaxStale)*time.Second) {
			d.kind, d.maxStale = decHit, true
			return d
		}
		if f.swr >= 0 && staleness <= time.Duration(f.swr) {
			d.kind = decSWR
			return d
		}
	}
	d.kind = decRevalidate
	return d
}

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7). The IMF-fixdate form
// is parsed without allocating; obsolete forms go through net/http.
// It returns the zero time when b is not a valid date.
func parseHTTPDate(b []byte) time.Time {
	if t, ok := parseIMFFixdate(b); ok {
		return t
	}
	if len(b) == 0 || len(b) > 64 {
		return time.Time{}
	}
	t, err := http.ParseTime(string(b))
	if err != nil {
		return time.Time{}
	}
	return t
}

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(b []byte) (time.Time, bool) {
	if len(b) != 29 || b[3] != ',' || b[4] != ' ' || b[7] != ' ' || b[11] != ' ' ||
		b[16] != ' ' || b[19] != ':' || b[22] != ':' || b[25] != ' ' || string(b[26:]) != "GMT" {
		return time.Time{}, false
	}
	num := func(p []byte) (int, bool) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	day, ok1 := num(b[5:7])
	year, ok2 := num(b[12:16])
	hh, ok3 := num(b[17:19])
	mm, ok4 := num(b[20:22])
	ss, ok5 := num(b[23:25])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	month := time.Month(0)
	for i, m := range [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"} {
		if string(b[8:11]) == m {
			month = time.Month(i + 1)
			break
		}
	}
	if month == 0 {
		return time.Time{}, false
	}
	return time.Date(year, month, day, hh, mm, ss, 0, time.UTC), true
}
