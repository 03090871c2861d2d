package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeloop/edgeloop/engine"
)

// guardTimeout bounds one admin API call.
const guardTimeout = 5 * time.Second

const guardUsage = `Usage: edgeloop guard COMMAND [flags]

Talks to a running edgeloop's admin API (--admin, default 127.0.0.1:18101,
or EDGELOOP_ADMIN).

Commands:
  status [--json]            mode, interfaces, drop counters, top sources, lists
  deny CIDR [--for 10m]      drop everything from CIDR (until undenied if no --for)
  undeny CIDR                remove a deny entry
  allow CIDR                 never drop CIDR (wins over every other check)
  unallow CIDR               remove an allow entry

Run 'edgeloop guard COMMAND --help' for a command's flags.
`

// runGuard implements "edgeloop guard status|deny|undeny|allow|unallow"
// against a running server's admin API. Bad arguments exit 2; an
// unreachable server or a refused change exits 1.
func runGuard(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("guard: missing command (status, deny, undeny, allow, unallow; see edgeloop guard --help)")}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, guardUsage)
		return errHelp
	case "status":
		return guardStatus(ctx, e, args)
	case "deny", "undeny", "allow", "unallow":
		return guardChange(ctx, e, cmd, args)
	}
	return usageError{fmt.Errorf("guard: unknown command %q (see edgeloop guard --help)", cmd)}
}

// guardFlags parses flags and positional arguments in any order (flag
// stops at the first positional one, so parse again after each).
func guardFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func newGuardFlagSet(e *env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("guard "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := e.getenv("EDGELOOP_ADMIN")
	if def == "" {
		def = engine.DefaultAdmin
	}
	admin := fs.String("admin", def, "the server's admin listener `addr`ess")
	return fs, admin
}

func guardStatus(ctx context.Context, e *env, args []string) error {
	fs, admin := newGuardFlagSet(e, "status")
	asJSON := fs.Bool("json", false, "print the raw JSON of GET /guard/status")
	pos, err := guardFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printFlags(e.stdout, "Usage: edgeloop guard status [--admin ADDR] [--json]\n\nFlags:\n", fs)
		return errHelp
	}
	if err != nil {
		return usageError{fmt.Errorf("guard status: %w", err)}
	}
	if len(pos) > 0 {
		return usageError{fmt.Errorf("guard status: unexpected argument %q", pos[0])}
	}
	body, err := guardCall(ctx, *admin, http.MethodGet, "/guard/status", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := e.stdout.Write(body)
		return err
	}
	var st engine.GuardStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("guard status: bad answer from %s: %w", *admin, err)
	}
	printGuardStatus(e.stdout, &st)
	return nil
}

func guardChange(ctx context.Context, e *env, cmd string, args []string) error {
	fs, admin := newGuardFlagSet(e, cmd)
	var ttl *string
	usage := fmt.Sprintf("Usage: edgeloop guard %s CIDR [--admin ADDR]\n\nCIDR is e.g. 192.0.2.0/24, 2001:db8::/48 or one address.\n\nFlags:\n", cmd)
	if cmd == "deny" {
		ttl = fs.String("for", "", "deny for this long, e.g. 90s or 10m (default: until undenied)")
		usage = "Usage: edgeloop guard deny CIDR [--for DURATION] [--admin ADDR]\n\nCIDR is e.g. 192.0.2.0/24, 2001:db8::/48 or one address.\n\nFlags:\n"
	}
	pos, err := guardFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printFlags(e.stdout, usage, fs)
		return errHelp
	}
	if err != nil {
		return usageError{fmt.Errorf("guard %s: %w", cmd, err)}
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("guard %s: want exactly one CIDR, got %d arguments", cmd, len(pos))}
	}
	p, err := engine.ParseGuardPrefix(pos[0])
	if err != nil {
		return usageError{fmt.Errorf("guard %s: %w", cmd, err)}
	}
	req := engine.GuardRequest{CIDR: p.String()}
	if ttl != nil {
		if _, err := engine.ParseGuardTTL(*ttl); err != nil {
			return usageError{fmt.Errorf("guard deny: --for: %w", err)}
		}
		req.For = *ttl
	}
	body, _ := json.Marshal(req)
	if _, err := guardCall(ctx, *admin, http.MethodPost, "/guard/"+cmd, body); err != nil {
		return err
	}
	switch {
	case cmd == "deny" && req.For != "":
		fmt.Fprintf(e.stdout, "denied %s for %s\n", req.CIDR, req.For)
	case cmd == "deny":
		fmt.Fprintf(e.stdout, "denied %s until undenied\n", req.CIDR)
	default:
		fmt.Fprintf(e.stdout, "%s: %s\n", cmd, req.CIDR)
	}
	return nil
}

// guardCall makes one admin API request and returns the body of a 200.
func guardCall(ctx context.Context, admin, method, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, guardTimeout)
	defer cancel()
	url := "http://" + admin + path
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, usageError{fmt.Errorf("--admin %q: %w", admin, err)}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach edgeloop's admin API at %s (is the server running? see --admin): %w", admin, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer from %s: %w", admin, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return out, nil
}

func printGuardStatus(w io.Writer, st *engine.GuardStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "mode:\t%s (%s)\n", st.Mode, st.Why)
	var ifs []string
	for _, i := range st.Interfaces {
		ifs = append(ifs, i.Name+" ("+i.Mode+")")
	}
	if len(ifs) > 0 {
		fmt.Fprintf(tw, "interfaces:\t%s\n", strings.Join(ifs, ", "))
	}
	if len(st.Ports) > 0 {
		fmt.Fprintf(tw, "ports:\t%v\n", st.Ports)
	}
	if st.PinPath != "" {
		fmt.Fprintf(tw, "pinned under:\t%s\n", st.PinPath)
	}
	c := st.Counters
	fmt.Fprintf(tw, "passed:\t%d (allowed %d, skipped %d, parse errors %d)\n", c.Passed, c.Allowed, c.Skipped, c.ParseErrors)
	var drops []string
	for _, r := range []string{"deny", "syn_rate", "conn_cap", "pps"} {
		if n, ok := c.Dropped[r]; ok {
			drops = append(drops, fmt.Sprintf("%s %d", r, n))
		}
	}
	fmt.Fprintf(tw, "dropped:\t%d (%s)\n", c.DroppedTotal, strings.Join(drops, ", "))
	fmt.Fprintf(tw, "escalations:\t%d\n", st.Escalations)
	tw.Flush()

	fmt.Fprintf(w, "\ndeny list (%d):\n", len(st.Deny))
	for _, d := range st.Deny {
		if d.Expires == nil {
			fmt.Fprintf(w, "  %-43s until undenied\n", d.CIDR)
		} else {
			fmt.Fprintf(w, "  %-43s expires in %s (%s)\n", d.CIDR, d.TTL, d.Expires.Format(time.RFC3339))
		}
	}
	fmt.Fprintf(w, "allow list (%d):\n", len(st.Allow))
	for _, a := range st.Allow {
		fmt.Fprintf(w, "  %s\n", a)
	}
	for _, top := range []struct {
		title string
		srcs  []engine.GuardSource
	}{{"top sources by SYNs", st.TopBySYN}, {"top sources by drops", st.TopByDrops}} {
		if len(top.srcs) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n", top.title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range top.srcs {
			fmt.Fprintf(tw, "  %s\tsyns %d\tdrops %d\tconns %d\n", s.Addr, s.SYNs, s.Drops, s.Conns)
		}
		tw.Flush()
	}
}
