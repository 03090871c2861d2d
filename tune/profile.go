package tune

import (
	"fmt"
	"strings"
)

// Profile names a set of sysctl recommendations. The zero value means
// ProfileBalanced.
type Profile string

// Profiles. Values in a profile are floors (or ceilings, or exact values,
// depending on the key's comparison): applying a profile never makes a host
// that is already tuned further in the same direction worse.
const (
	// ProfileBalanced suits a general edge host: large queues and buffers,
	// no busy polling.
	ProfileBalanced Profile = "balanced"
	// ProfileThroughput favours bulk transfer and many connections: larger
	// buffers and queues, more ports, more file handles.
	ProfileThroughput Profile = "throughput"
	// ProfileLatency favours the tail: busy polling and a low unsent-data
	// watermark so HTTP/2 priorities and small responses are not queued
	// behind bulk data in the socket.
	ProfileLatency Profile = "latency"

	defaultProfile = ProfileBalanced
)

// Profiles lists the known profiles, default first.
var Profiles = []Profile{ProfileBalanced, ProfileThroughput, ProfileLatency}

// ParseProfile maps a name (case-insensitive, "" = balanced) to a Profile.
func ParseProfile(s string) (Profile, error) {
	p := Profile(strings.ToLower(strings.TrimSpace(s)))
	if p == "" {
		return defaultProfile, nil
	}
	for _, q := range Profiles {
		if p == q {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want balanced, throughput or latency)", ErrUnknownProfile, s)
}

// kind is how a key's current value is compared with the recommendation and
// how Apply merges the two.
type kind int

const (
	atLeast   kind = iota // limits and sizes: a host already above is fine
	atMost                // timeouts and watermarks: a host already below is fine
	exact                 // booleans and enums
	bits                  // bitmasks: every recommended bit must be set
	portRange             // "low high": the current range must contain the recommended one
	fieldsMin             // "min default max": per-field at least
)

// key is one row of the profile table. A value of "" for a profile means the
// profile leaves the key alone and Show does not list it.
type key struct {
	name                          string
	kind                          kind
	balanced, throughput, latency string
	why                           string
}

func (k key) value(p Profile) string {
	switch p {
	case ProfileThroughput:
		return k.throughput
	case ProfileLatency:
		return k.latency
	}
	return k.balanced
}

// table is the profile table. Sources for the reasoning: the kernel's
// Documentation/networking/ip-sysctl.rst and admin-guide/sysctl/{net,fs}.rst.
var table = []key{
	{"net.core.somaxconn", atLeast, "8192", "65535", "8192",
		"caps every listen() backlog; the kernel silently truncates larger values"},
	{"net.ipv4.tcp_max_syn_backlog", atLeast, "8192", "65535", "8192",
		"half-open (SYN_RECV) queue per listener before SYN cookies take over"},
	{"net.core.netdev_max_backlog", atLeast, "16384", "65536", "16384",
		"packets queued per CPU when the NIC delivers faster than the stack drains"},
	{"net.core.rmem_max", atLeast, "16777216", "67108864", "16777216",
		"ceiling for SO_RCVBUF (and UDP buffers); TCP autotuning uses tcp_rmem"},
	{"net.core.wmem_max", atLeast, "16777216", "67108864", "16777216",
		"ceiling for SO_SNDBUF set by applications"},
	{"net.core.rmem_default", atLeast, "262144", "1048576", "262144",
		"default receive buffer of non-TCP sockets (UDP: DNS, QUIC)"},
	{"net.core.wmem_default", atLeast, "262144", "1048576", "262144",
		"default send buffer of non-TCP sockets"},
	{"net.ipv4.tcp_rmem", fieldsMin, "4096 131072 16777216", "4096 262144 67108864", "4096 131072 16777216",
		"TCP receive autotuning min/default/max; max bounds the window on long fat paths"},
	{"net.ipv4.tcp_wmem", fieldsMin, "4096 16384 16777216", "4096 65536 67108864", "4096 16384 16777216",
		"TCP send autotuning min/default/max; max bounds in-flight data per connection"},
	{"net.ipv4.ip_local_port_range", portRange, "10240 65535", "1024 65535", "10240 65535",
		"ephemeral ports for connections to origins; odd/even ends as the kernel prefers"},
	{"net.ipv4.tcp_fin_timeout", atMost, "30", "15", "15",
		"how long orphaned FIN_WAIT_2 sockets hold memory after we close"},
	{"net.ipv4.tcp_tw_reuse", exact, "1", "1", "1",
		"reuse TIME_WAIT ports for new connections to origins (safe with timestamps, RFC 7323)"},
	{"net.ipv4.tcp_fastopen", bits, "3", "3", "3",
		"TCP Fast Open (RFC 7413): 1 client, 2 server; listeners still opt in per socket"},
	{"net.ipv4.tcp_syncookies", exact, "1", "1", "1",
		"answer SYN floods with cookies once the SYN queue is full (RFC 4987)"},
	{"fs.file-max", atLeast, "1048576", "2097152", "1048576",
		"system-wide open file limit; every connection is a file"},
	{"fs.nr_open", atLeast, "1048576", "1048576", "1048576",
		"ceiling for any process's RLIMIT_NOFILE hard limit"},
	{"net.core.busy_poll", atLeast, "", "", "50",
		"µs poll/epoll spin on the NIC queue before sleeping: CPU for latency"},
	{"net.core.busy_read", atLeast, "", "", "50",
		"µs a blocking read spins on the NIC queue before sleeping"},
	{"net.ipv4.tcp_slow_start_after_idle", exact, "0", "0", "0",
		"keep-alive connections keep their window after idle (RFC 5681 §4.1 is for bulk senders)"},
	{"net.ipv4.tcp_notsent_lowat", atMost, "131072", "", "16384",
		"limit unsent data queued in the socket so new responses are not stuck behind it"},
	{"net.ipv4.tcp_mtu_probing", atLeast, "1", "1", "1",
		"probe the path MTU when ICMP is black-holed (RFC 4821) instead of stalling"},
	{"net.ipv4.tcp_max_tw_buckets", atLeast, "262144", "1048576", "262144",
		"TIME_WAIT sockets kept before the kernel destroys them early and warns"},
	{"net.core.default_qdisc", exact, "fq", "fq", "fq",
		"fair queueing with pacing for BBR; applies to interfaces set up afterwards"},
	{"net.ipv4.tcp_congestion_control", exact, "bbr", "bbr", "bbr",
		"BBR keeps queues short and copes with loss on client paths; only if the kernel has it"},
	{"net.netfilter.nf_conntrack_max", atLeast, "262144", "1048576", "262144",
		"conntrack table size when netfilter tracks connections; full table drops packets"},
}

// availableCongestion is the sysctl that lists the congestion control
// algorithms the kernel has loaded.
const availableCongestion = "net.ipv4.tcp_available_congestion_control"
