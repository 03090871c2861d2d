package main

import (
	"context"
	"errors"
)

// runTune implements "edgeloop tune show|diff|apply". (Wired by the tuning work.)
func runTune(ctx context.Context, e *env, args []string) error {
	return usageError{errors.New("tune: not available in this build yet")}
}
