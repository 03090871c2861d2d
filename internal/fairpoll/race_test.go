//go:build race

package fairpoll

// raceEnabled: the race detector shuffles the scheduler, so arrival order
// cannot be checked under it.
const raceEnabled = true
