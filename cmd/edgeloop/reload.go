package main

import (
	"context"
	"errors"
)

// runReload implements "edgeloop reload". (Wired by the workers work.)
func runReload(ctx context.Context, e *env, args []string) error {
	return usageError{errors.New("reload: not available in this build yet")}
}
