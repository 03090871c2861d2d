package uring

import "sync"

// Waking a goroutine puts it in the scheduler's run-next slot and moves
// the one there to the tail of the run queue, so goroutines woken one after
// another would run last-woken first. Readying a parked absorber after them
// takes the run-next slot instead, and the woken ones run in the order
// they were woken: the order their sends completed.
var (
	absorb     = make(chan struct{}, 1)
	absorbOnce sync.Once
)

func startAbsorber() {
	absorbOnce.Do(func() {
		go func() {
			for range absorb { //nolint:revive // parks between wake-ups on purpose
			}
		}()
	})
}

func absorbWakes() {
	select {
	case absorb <- struct{}{}:
	default:
	}
}
