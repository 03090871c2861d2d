package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/edgeloop/edgeloop/engine"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

const serveUsage = `Usage: edgeloop [serve] [flags]

Serves on :18100 (admin on 127.0.0.1:18101). With no config file and no
--upstream or --root, it serves the built-in default site.

With --workers N (or workers: N), a supervisor runs N worker processes, each
pinned to a CPU with its own SO_REUSEPORT socket. SIGHUP (or 'edgeloop
reload') reloads the config without dropping a request; SIGUSR2 (or
'edgeloop reload --upgrade') re-executes the binary with the sockets inherited.

Flags:
`

// runServe parses the serve flags, loads the config and serves until ctx ends.
func runServe(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "YAML config `file`")
	var listen, upstreams listFlag
	fs.Var(&listen, "listen", "public listen `addr`ess, e.g. :18100 (repeatable; overrides the file and EDGELOOP_LISTEN)")
	admin := fs.String("admin", "", "admin listen `addr`ess (metrics, health, pprof), or off")
	fs.Var(&upstreams, "upstream", "proxy the / route to this `URL` (repeatable; overrides EDGELOOP_UPSTREAM)")
	root := fs.String("root", "", "serve this `dir`ectory on the / route instead of the built-in site")
	transport := fs.String("transport", "", "network transport: standard or netpoll")
	cacheSize := fs.String("cache", "", "cache the / route's responses in this much memory, e.g. 512MiB")
	workers := fs.String("workers", "", "serving processes: a `number`, or auto for one per usable CPU (overrides the file's workers:)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(e.stdout, serveUsage, fs)
			return errHelp
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	flags := engine.Overrides{
		Listen: listen, Admin: *admin, Upstreams: upstreams, Root: *root, Transport: *transport,
	}
	if *cacheSize != "" {
		n, err := engine.ParseSize(*cacheSize)
		if err != nil {
			return usageError{fmt.Errorf("--cache: %w", err)}
		}
		flags.CacheSize = n
	}
	var nworkers engine.Workers
	if *workers != "" {
		var err error
		if nworkers, err = parseWorkers(*workers); err != nil {
			return usageError{err}
		}
	}
	// load is called at start and again on every reload (SIGHUP), so a
	// reload sees the file as it is now, under the same flags.
	load := func() (*engine.Config, error) {
		cfg, err := loadConfig(*configPath, engine.FromEnv(e.getenv).Merge(flags))
		if err != nil {
			return nil, err
		}
		if nworkers != 0 {
			cfg.Workers = nworkers
		}
		return cfg, nil
	}
	if _, err := load(); err != nil {
		return usageError{err}
	}
	level := new(slog.LevelVar) // a reload changes it
	return engine.Serve(ctx, engine.RunOptions{
		Load:   load,
		Logger: func(cfg *engine.Config) *slog.Logger { return newLogger(e.stderr, cfg.Log, level) },
		Reconfigure: func(cfg *engine.Config) {
			level.Set(logLevel(cfg.Log.Level))
		},
		Args:   e.args,
		Stderr: e.stderr,
	})
}

// parseWorkers reads --workers: a positive number or auto.
func parseWorkers(s string) (engine.Workers, error) {
	if s == "auto" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--workers %q: want a positive number or auto", s)
	}
	return engine.Workers(n), nil
}

// loadConfig reads the file (if any), applies the overrides and validates.
func loadConfig(path string, o engine.Overrides) (*engine.Config, error) {
	cfg := &engine.Config{}
	if path != "" {
		var err error
		if cfg, err = engine.LoadFile(path); err != nil {
			return nil, err
		}
	}
	if err := cfg.Apply(o); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newLogger builds the process's logger for lc, its level kept in level
// (which a reload sets). The format is fixed for the process's life.
func newLogger(w io.Writer, lc engine.LogConfig, level *slog.LevelVar) *slog.Logger {
	level.Set(logLevel(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logLevel parses a validated log.level (debug, info, warn, error).
func logLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

func printFlags(w io.Writer, usage string, fs *flag.FlagSet) {
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// runConfig implements "edgeloop config check FILE".
func runConfig(e *env, args []string) error {
	const usage = "Usage: edgeloop config check FILE\n\nValidates FILE as serving would (including EDGELOOP_LISTEN and\nEDGELOOP_UPSTREAM) and exits 0 when it is good, 2 with FILE:LINE: reason when not.\n"
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "help" {
			fmt.Fprint(e.stdout, usage)
			return errHelp
		}
	}
	if len(args) != 2 || args[0] != "check" {
		return usageError{errors.New("usage: edgeloop config check FILE")}
	}
	if _, err := loadConfig(args[1], engine.FromEnv(e.getenv)); err != nil {
		return usageError{err}
	}
	fmt.Fprintf(e.stdout, "%s: ok\n", args[1])
	return nil
}
