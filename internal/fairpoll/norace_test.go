//go:build !race

package fairpoll

const raceEnabled = false
