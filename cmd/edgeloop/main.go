// Command edgeloop is an edge gateway and CDN node in one binary: a caching,
// compressing reverse proxy with per-client limits in front of an origin.
//
//	edgeloop [serve] [--config FILE] [--listen ADDR] [--admin ADDR] [--upstream URL]... [--root DIR]
//	edgeloop config check FILE
//	edgeloop version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeloop/edgeloop/engine"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the server could not start or stopped with an error
	exitUsage   = 2 // bad flags or a bad config file
)

// env is what run needs from the outside world; tests replace it.
type env struct {
	args   []string
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// usageError marks errors that exit with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// errHelp is returned after printing --help: exit 0.
var errHelp = errors.New("help shown")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e := &env{args: os.Args[1:], stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(exitCode(e, run(ctx, e)))
}

func exitCode(e *env, err error) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.Is(err, engine.ErrConfig):
		// FILE:LINE: reason, alone on its line, as compilers print it.
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintln(e.stderr, "edgeloop:", err)
		return exitUsage
	default:
		fmt.Fprintln(e.stderr, "edgeloop:", err)
		return exitFailure
	}
}

const mainUsage = `edgeloop — an edge gateway and CDN node in one binary.

Usage:
  edgeloop [serve] [flags]        serve (the default command)
  edgeloop config check FILE      validate a config file and exit
  edgeloop guard status|deny|allow  the kernel guard of a running server
  edgeloop tune show|diff|apply   the host's sysctl profile
  edgeloop reload                 reload a running server's config
  edgeloop version                print the version

Run 'edgeloop serve --help' for the serving flags.
`

// run dispatches the subcommand.
func run(ctx context.Context, e *env) error {
	args := e.args
	if len(args) == 0 {
		return runServe(ctx, e, nil)
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, e, args[1:])
	case "config":
		return runConfig(e, args[1:])
	case "guard":
		return runGuard(ctx, e, args[1:])
	case "tune":
		return runTune(ctx, e, args[1:])
	case "reload":
		return runReload(ctx, e, args[1:])
	case "version", "--version":
		fmt.Fprintln(e.stdout, "edgeloop", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, mainUsage)
		return errHelp
	}
	if len(args[0]) > 0 && args[0][0] == '-' {
		return runServe(ctx, e, args)
	}
	return usageError{fmt.Errorf("unknown command %q (see edgeloop --help)", args[0])}
}
