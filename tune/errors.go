// Package tune tunes the host and the sockets an edge node serves from: a
// sysctl profile that can be shown, diffed, applied and persisted, listening
// sockets whose options (backlog, SO_REUSEPORT, TCP_DEFER_ACCEPT, TCP
// Fast Open, buffers, busy polling) are set before listen(2), the
// RLIMIT_NOFILE soft limit and CPU affinity.
//
// It is Linux only and knows nothing of HTTP or of the server that uses it.
package tune

import "errors"

// Errors returned by tune. Callers compare with errors.Is; the returned errors
// wrap these with the key, path or numbers involved.
var (
	// ErrNotRoot: writing a sysctl or a file under /etc needs root (euid 0)
	// or the kernel answered EACCES/EPERM to the write.
	ErrNotRoot = errors.New("tune: root privileges required")

	// ErrUnknownProfile: the profile name is not balanced, throughput or
	// latency.
	ErrUnknownProfile = errors.New("tune: unknown profile")

	// ErrMalformed: a sysctl file holds text that is not the shape its key
	// has (a number, a list of numbers, a name).
	ErrMalformed = errors.New("tune: malformed sysctl value")

	// ErrMissing: the sysctl does not exist on this host (module not
	// loaded, older kernel, or the recommended choice is not available).
	ErrMissing = errors.New("tune: sysctl not present")

	// ErrNoFileLimit: the RLIMIT_NOFILE hard limit is below what was asked.
	ErrNoFileLimit = errors.New("tune: open file hard limit too low")

	// ErrBadCPU: the CPU number is negative, too large, or outside the set
	// the process may run on (cgroup cpuset or an earlier affinity mask).
	ErrBadCPU = errors.New("tune: cpu not usable")

	// ErrBadAddress: Listen was given a network other than tcp, tcp4, tcp6
	// or an address it cannot parse or resolve.
	ErrBadAddress = errors.New("tune: bad listen address")

	// ErrBadConfig: a SocketConfig field is out of range (negative sizes or
	// durations).
	ErrBadConfig = errors.New("tune: bad socket config")

	// ErrReusePort: SO_REUSEPORT was asked for and the kernel refused it.
	// Unlike the other socket options it is required, because without it a
	// second worker's bind fails or, worse, the workers do not share load.
	ErrReusePort = errors.New("tune: SO_REUSEPORT refused")
)
