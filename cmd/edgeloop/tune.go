package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/edgeloop/edgeloop/engine"
	"github.com/edgeloop/edgeloop/tune"
)

const tuneUsage = `Usage:
  edgeloop tune show  [--profile P] [--json]   every key: current, recommended, status, why
  edgeloop tune diff  [--profile P] [--json]   only the keys apply would change
  edgeloop tune apply [--profile P] [--persist [--persist-file F]]
                                               write them through /proc/sys (root only);
                                               --persist also writes a sysctl.d file so
                                               they survive a reboot

Profiles: balanced (default), throughput, latency. Values are floors: apply
never makes a host already tuned further in the same direction worse.
Most net.* keys are per network namespace: they act on the caller's.

Flags:
`

// runTune implements "edgeloop tune show|diff|apply".
func runTune(_ context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("tune: want show, diff or apply (see edgeloop tune --help)")}
	}
	verb := args[0]
	fs := flag.NewFlagSet("tune", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	profile := fs.String("profile", "", "`profile`: balanced, throughput or latency (default balanced)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table (show, diff)")
	persist := fs.Bool("persist", false, "apply: also write the profile as a sysctl.d file")
	persistFile := fs.String("persist-file", "/etc/sysctl.d/90-edgeloop.conf", "apply --persist: the `file` written")
	root := fs.String("sysctl-root", "", "`dir`ectory that mirrors /proc/sys (testing; default /proc/sys)")
	switch verb {
	case "-h", "--help", "help":
		printFlags(e.stdout, tuneUsage, fs)
		return errHelp
	case "show", "diff", "apply":
	default:
		return usageError{fmt.Errorf("tune: unknown command %q (want show, diff or apply)", verb)}
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(e.stdout, tuneUsage, fs)
			return errHelp
		}
		return usageError{fmt.Errorf("tune %s: %w", verb, err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("tune %s: unexpected argument %q", verb, fs.Arg(0))}
	}
	p, err := tune.ParseProfile(*profile)
	if err != nil {
		return usageError{err}
	}
	sys := tune.Sysctl{Root: *root}
	switch verb {
	case "show", "diff":
		show := sys.Show
		if verb == "diff" {
			show = sys.Diff
		}
		settings, err := show(p)
		if err := printSettings(e.stdout, settings, *asJSON, p); err != nil {
			return err
		}
		if err != nil {
			// Malformed keys are listed in the table; say so, but the
			// rest was compared.
			fmt.Fprintln(e.stderr, "edgeloop: tune:", err)
		}
		if verb == "diff" && len(settings) == 0 && !*asJSON {
			fmt.Fprintf(e.stdout, "nothing to change: the host meets the %s profile\n", p)
		}
		return nil
	}
	return tuneApply(e, sys, p, *persist, *persistFile)
}

func tuneApply(e *env, sys tune.Sysctl, p tune.Profile, persist bool, persistFile string) error {
	if sys.Root == "" && os.Geteuid() != 0 {
		return usageError{errors.New("tune apply: needs root to write /proc/sys (run it with sudo; `edgeloop tune diff` shows what it would change)")}
	}
	changes, err := sys.Apply(p)
	for _, c := range changes {
		fmt.Fprintf(e.stdout, "%s: %s -> %s\n", c.Key, c.Old, c.New)
	}
	if errors.Is(err, tune.ErrNotRoot) {
		return usageError{fmt.Errorf("tune apply: %w (changes made so far are kept)", err)}
	}
	if err != nil {
		return fmt.Errorf("tune apply: %w", err)
	}
	if len(changes) == 0 {
		fmt.Fprintf(e.stdout, "nothing to change: the host meets the %s profile\n", p)
	}
	if persist {
		if err := sys.Persist(p, persistFile); err != nil {
			if errors.Is(err, tune.ErrNotRoot) {
				return usageError{fmt.Errorf("tune apply --persist: %w", err)}
			}
			return fmt.Errorf("tune apply --persist: %w", err)
		}
		fmt.Fprintf(e.stdout, "wrote %s (loaded at boot by systemd-sysctl)\n", persistFile)
	}
	return nil
}

func printSettings(w io.Writer, settings []tune.Setting, asJSON bool, p tune.Profile) error {
	if !asJSON {
		return tune.FormatTable(w, settings)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"profile": string(p), "settings": engine.TuneRows(settings)})
}
