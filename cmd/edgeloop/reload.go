package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgeloop/edgeloop/engine"
)

const reloadUsage = `Usage: edgeloop reload [--admin ADDR | --config FILE] [--upgrade]

Asks a running edgeloop to re-read its config (POST /reload on its admin
listener; the same as sending SIGHUP to the supervisor or single process).
The server validates the file first: a broken one is refused with
FILE:LINE: reason, printed here, and the running config keeps serving.
With --upgrade it re-executes its binary instead (POST /upgrade, the same
as SIGUSR2): a new version installed at the same path takes over the
sockets, and the old process drains and exits.

Exit status: 0 done, 1 refused or failed, 2 bad usage.

Flags:
`

// reloadTimeout bounds the wait for the server's answer: starting new
// workers (or a new binary) and waiting until they serve.
const reloadTimeout = 60 * time.Second

// runReload implements "edgeloop reload".
func runReload(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	admin := fs.String("admin", "", "the server's admin `addr`ess (default: the config file's admin:, else "+engine.DefaultAdmin+")")
	configPath := fs.String("config", "", "read the admin address from this config `file`")
	upgrade := fs.Bool("upgrade", false, "re-execute the binary (binary upgrade) instead of reloading the config")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(e.stdout, reloadUsage, fs)
			return errHelp
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("reload: unexpected argument %q", fs.Arg(0))}
	}
	addr := *admin
	if addr == "" {
		addr = engine.DefaultAdmin
		if *configPath != "" {
			cfg, err := engine.LoadFile(*configPath)
			if err != nil {
				return usageError{err}
			}
			addr = cfg.Admin
		}
	}
	if addr == "off" {
		return usageError{errors.New("reload: the admin listener is off; send SIGHUP to the server's pid instead")}
	}
	path := "/reload"
	if *upgrade {
		path = "/upgrade"
	}
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+path, nil)
	if err != nil {
		return usageError{fmt.Errorf("reload: admin address %q: %w", addr, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reload: is edgeloop running with its admin listener on %s? %w", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reload refused (%s): %s", resp.Status, msg)
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}
