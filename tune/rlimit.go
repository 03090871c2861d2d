package tune

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// RaiseNoFile raises this process's RLIMIT_NOFILE soft limit to need, and
// returns the soft limit in force afterwards. It never lowers a limit.
//
// The soft limit can go up to the hard limit without privileges. Above it,
// RaiseNoFile tries to raise the hard limit too, which needs
// CAP_SYS_RESOURCE and is capped by fs.nr_open; when that fails it raises
// the soft limit to the hard limit and returns an error wrapping
// ErrNoFileLimit with the numbers and what to change. The process can still
// run with got files: the error is for the operator, not a reason to stop.
//
// Go (since 1.19) already raises the soft limit to the hard limit at start,
// so on most hosts the interesting case is the error. Safe for concurrent
// use; the limit is process-wide.
func RaiseNoFile(need uint64) (got uint64, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	if lim.Cur >= need {
		return lim.Cur, nil
	}
	if need <= lim.Max {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: need, Max: lim.Max}); err != nil {
			return lim.Cur, fmt.Errorf("setrlimit nofile %d: %w", need, err)
		}
		return need, nil
	}
	// Above the hard limit: only CAP_SYS_RESOURCE may raise it.
	err = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: need, Max: need})
	if err == nil {
		return need, nil
	}
	why := err
	if errors.Is(err, unix.EPERM) {
		why = errors.New("no CAP_SYS_RESOURCE")
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
		if nr, rerr := (Sysctl{}).Read("fs.nr_open"); rerr == nil {
			why = fmt.Errorf("%v; fs.nr_open = %s caps any hard limit", why, nr)
		}
	}
	got = lim.Cur
	if lim.Cur < lim.Max {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim.Max, Max: lim.Max}); err == nil {
			got = lim.Max
		}
	}
	return got, fmt.Errorf("%w: need %d open files, hard limit is %d (%v), soft limit now %d; "+
		"raise the hard limit where edgeloop is started (systemd LimitNOFILE=%d, `ulimit -Hn %d` as root, "+
		"or /etc/security/limits.conf) or grant CAP_SYS_RESOURCE",
		ErrNoFileLimit, need, lim.Max, why, got, need, need)
}

// NoFile returns this process's RLIMIT_NOFILE soft and hard limits.
func NoFile() (soft, hard uint64, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	return lim.Cur, lim.Max, nil
}
