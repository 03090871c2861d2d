//go:build race

package limit

// raceEnabled: the race detector slows Allow about fortyfold, so the
// memory-bound test sends fewer addresses under it.
const raceEnabled = true
