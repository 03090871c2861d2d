package compress

import (
	"errors"
	"testing"
)

var (
	brGzip = []Encoding{Brotli, Gzip}
	gzipBr = []Encoding{Gzip, Brotli}
	onlyGz = []Encoding{Gzip}
)

func TestNegotiate(t *testing.T) {
	f := func(ae string, prefer []Encoding, want Encoding) {
		t.Helper()
		if got := Negotiate([]byte(ae), prefer); got != want {
			t.Errorf("Negotiate(%q, %v) = %v, want %v", ae, prefer, got, want)
		}
	}
	// No field value, no preference stated: identity.
	f("", brGzip, Identity)
	f("   ", brGzip, Identity)

	// Plain tokens; ties go to the server's order.
	f("gzip", brGzip, Gzip)
	f("br", brGzip, Brotli)
	f("gzip, br", brGzip, Brotli)
	f("gzip, br", gzipBr, Gzip)
	f("gzip, deflate, br, zstd", brGzip, Brotli)
	f("br", onlyGz, Identity)
	f("compress, deflate", brGzip, Identity)

	// q-values rank; q=0 excludes.
	f("br;q=0.5, gzip", brGzip, Gzip)
	f("br;q=0.9, gzip;q=0.8", gzipBr, Brotli)
	f("br;q=0, gzip;q=0", brGzip, Identity)
	f("br;q=0, gzip", brGzip, Gzip)
	f("gzip;q=0.001", brGzip, Gzip)
	f("gzip;q=0.000", brGzip, Identity)
	f("br;q=1, gzip;q=1.0", gzipBr, Gzip)
	f("br;q=1.000, gzip;q=0.999", gzipBr, Brotli)
	f("br;q=1., gzip;q=0.5", brGzip, Brotli)

	// Wildcard: stands for every coding not listed.
	f("*", brGzip, Brotli)
	f("*", gzipBr, Gzip)
	f("*;q=0.5, br;q=0", brGzip, Gzip)
	f("*, br;q=0", brGzip, Gzip)
	f("*;q=0", brGzip, Identity)
	f("br;q=0.2, *;q=0.1", gzipBr, Brotli)

	// identity competes only when the client weighs it above the best coding.
	f("gzip;q=0.5, identity", brGzip, Identity)
	f("gzip;q=0.5, identity;q=0.5", brGzip, Gzip)
	f("gzip, identity;q=0", brGzip, Gzip)
	f("identity;q=0", brGzip, Identity)
	f("identity", brGzip, Identity)
	f("gzip;q=0.5, *;q=0.8", brGzip, Brotli)
	f("gzip;q=0.5, *;q=0.8", onlyGz, Identity)

	// Case-insensitive tokens and weight name; x-gzip is gzip.
	f("GZIP", brGzip, Gzip)
	f("Br", brGzip, Brotli)
	f("X-Gzip", brGzip, Gzip)
	f("br;Q=0.5, gzip;q=0.4", brGzip, Brotli)
	f("IDENTITY, GZIP;Q=0.1", brGzip, Identity)

	// Whitespace around elements and weights; empty list elements.
	f(" gzip ; q=0.8 , br;q=0.9 ", gzipBr, Brotli)
	f("\tgzip\t", brGzip, Gzip)
	f(",,, gzip,,", brGzip, Gzip)
	f("br\t;\tq=0.3,gzip;q=0.2", gzipBr, Brotli)

	// Malformed elements are ignored, the rest still counts.
	f("br;q=1.001, gzip;q=0.1", brGzip, Gzip)
	f("br;q=2, gzip;q=0.1", brGzip, Gzip)
	f("br;q=0.5x, gzip;q=0.1", brGzip, Gzip)
	f("br;q=.5, gzip;q=0.1", brGzip, Gzip)
	f("br;q=0.1234, gzip;q=0.1", brGzip, Gzip)
	f("br;q, gzip;q=0.1", brGzip, Gzip)
	f("br;q=, gzip;q=0.1", brGzip, Gzip)
	f("br;q =0.9, gzip;q=0.1", brGzip, Gzip)
	f("br;level=3, gzip;q=0.1", brGzip, Gzip)
	f("br;q=0.8;q=0.9, gzip;q=0.1", brGzip, Gzip)
	f("b r, gzip;q=0.1", brGzip, Gzip)
	f("br/1, gzip;q=0.1", brGzip, Gzip)
	f(";q=1, gzip;q=0.1", brGzip, Gzip)
	f("br;, gzip;q=0.1", brGzip, Gzip)
	f("\x00\xff, gzip", brGzip, Gzip)
	f(";;;,,,===", brGzip, Identity)

	// A coding listed twice: the first occurrence wins.
	f("br;q=0, br", brGzip, Identity)
	f("gzip, gzip;q=0", brGzip, Gzip)
	f("*;q=0, *", brGzip, Identity)

	// An empty preference list offers nothing.
	f("gzip, br", nil, Identity)
}

func TestNegotiateAllocs(t *testing.T) {
	ae := []byte("gzip;q=0.8, deflate, br;q=0.9, *;q=0.1, identity;q=0.5, x-gzip, zstd")
	allocs := testing.AllocsPerRun(100, func() {
		if Negotiate(ae, brGzip) != Brotli {
			t.Fatal("wrong coding")
		}
	})
	if allocs != 0 {
		t.Fatalf("Negotiate allocates %v times per call, want 0", allocs)
	}
}

func TestParseEncoding(t *testing.T) {
	f := func(in string, want Encoding, wantErr error) {
		t.Helper()
		got, err := ParseEncoding(in)
		if !errors.Is(err, wantErr) || (err == nil && got != want) {
			t.Errorf("ParseEncoding(%q) = %v, %v; want %v, %v", in, got, err, want, wantErr)
		}
	}
	f("gzip", Gzip, nil)
	f("X-GZIP", Gzip, nil)
	f("br", Brotli, nil)
	f("identity", Identity, nil)
	f("zstd", Identity, ErrUnknownEncoding)
	f("*", Identity, ErrUnknownEncoding)
	f("", Identity, ErrUnknownEncoding)

	for e := range numEncodings {
		back, err := ParseEncoding(e.String())
		if err != nil || back != e {
			t.Errorf("ParseEncoding(%v.String()) = %v, %v", e, back, err)
		}
	}
	if s := Encoding(200).String(); s != "Encoding(200)" {
		t.Errorf("Encoding(200).String() = %q", s)
	}
}
