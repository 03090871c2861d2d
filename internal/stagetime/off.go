//go:build !stagetime

package stagetime

// Enabled reports whether this build times stages (-tags stagetime).
const Enabled = false

// Hist is a histogram of durations; in this build it records nothing.
type Hist struct{}

// New returns nil: nothing is recorded without -tags stagetime.
func New(string) *Hist { return nil }

// Rec does nothing without -tags stagetime.
func (*Hist) Rec(int64) {}

// Now returns 0 without -tags stagetime.
func Now() int64 { return 0 }
