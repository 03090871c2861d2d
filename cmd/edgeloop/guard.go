package main

import (
	"context"
	"errors"
)

// runGuard implements "edgeloop guard status|deny|allow" against a running
// server's admin API. (Wired by the kernel guard work.)
func runGuard(ctx context.Context, e *env, args []string) error {
	return usageError{errors.New("guard: not available in this build yet")}
}
