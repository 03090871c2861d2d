//go:build ignore

// guard.c holds edgeloop's kernel guard: an XDP program that drops abusive
// TCP traffic to the guarded ports before the kernel allocates anything for
// it, and a sock_ops program that counts established connections per remote
// address for the XDP program's connection cap.
//
// Every address is keyed as 16 bytes: IPv6 as is, IPv4 as an IPv4-mapped IPv6
// address (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2). The sock_ops program sees
// IPv4 clients of a dual-stack listener in exactly that form, so one key form
// serves every map and one LPM trie per list serves both families.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_8021Q_ 0x8100
#define IP_MF_OFFSET 0x3FFF /* "more fragments" flag and offset */
#define IP_OFFSET 0x1FFF
#define NSEC_PER_SEC 1000000000ULL
#define MAX_VLAN_TAGS 2
#define MAX_EXPIRED_PER_PACKET 4

/* Counter indexes of the per-CPU stats array; mirrored in stats.go. */
enum stat {
	STAT_PASS = 0,      /* packet to a guarded port, passed the checks */
	STAT_ALLOWED,       /* packet to a guarded port from an allowed prefix */
	STAT_SKIPPED,       /* not TCP to a guarded port: passed untouched */
	STAT_PARSE_ERROR,   /* truncated or malformed header: passed untouched */
	STAT_DROP_DENY,
	STAT_DROP_SYN_RATE,
	STAT_DROP_CONN_CAP,
	STAT_DROP_PPS,
	STAT_MAX,
};

/* Tunables, set by the loader before the program is loaded. */
volatile const __u64 syn_interval_ns = 0; /* GCRA emission interval; 0 = no SYN limit */
volatile const __u64 syn_tolerance_ns = 0; /* burst * interval */
volatile const __u32 max_conns = 0;       /* 0 = no connection cap */
volatile const __u32 pps_limit = 0;       /* 0 = no pps ceiling */
volatile const __u64 pps_window_ns = NSEC_PER_SEC;

struct addr {
	__u8 b[16];
};

struct lpm_key {
	__u32 prefixlen;
	struct addr addr;
};

/* deny_entry is a deny trie value. It repeats its own key so that an
 * expired entry found by a longest-prefix lookup can be deleted. */
struct deny_entry {
	__u64 expires_ns; /* bpf_ktime_get_ns() deadline; 0 = until removed */
	struct lpm_key key;
	__u32 _pad;
};

/* source is the per-address state of the XDP program. Fields are updated
 * without locks: concurrent packets from one source on several CPUs may
 * race, which makes the limits approximate by at most a packet per CPU. */
struct source {
	__u64 syn_tat;      /* GCRA theoretical arrival time of the next SYN */
	__u64 window_start; /* start of the current pps window */
	__u64 window_pkts;  /* packets in the current pps window */
	__u64 syns;         /* SYNs seen */
	__u64 drops;        /* packets dropped */
	__u64 last_seen;    /* bpf_ktime_get_ns() of the last packet */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16); /* host byte order */
	__type(value, __u8);
	__uint(max_entries, 1);
} guarded_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_key);
	__type(value, struct deny_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} deny_list SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allow_list SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct addr);
	__type(value, struct source);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct addr);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

static __always_inline int count(__u32 idx, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1; /* per-CPU slot: no other writer */
	return verdict;
}

static __always_inline void map_v4(struct addr *a, __be32 ip)
{
	__builtin_memset(a, 0, sizeof(*a));
	a->b[10] = 0xff;
	a->b[11] = 0xff;
	__builtin_memcpy(&a->b[12], &ip, 4);
}

/* denied reports whether src is in the deny list, deleting the expired
 * entries it meets on the way (a bounded number per packet). */
static __always_inline int denied(struct addr *src, __u64 now)
{
	struct lpm_key key = {.prefixlen = 128, .addr = *src};

	for (int i = 0; i < MAX_EXPIRED_PER_PACKET; i++) {
		struct deny_entry *e = bpf_map_lookup_elem(&deny_list, &key);
		if (!e)
			return 0;
		if (e->expires_ns == 0 || now < e->expires_ns)
			return 1;
		struct lpm_key stale = e->key;
		bpf_map_delete_elem(&deny_list, &stale);
	}
	return 0;
}

static __always_inline struct source *source_state(struct addr *src, __u64 now)
{
	struct source *s = bpf_map_lookup_elem(&sources, src);
	if (s)
		return s;
	struct source fresh = {.window_start = now, .syn_tat = now};
	bpf_map_update_elem(&sources, src, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sources, src);
}

static __always_inline int drop(struct source *s, __u32 reason)
{
	__sync_fetch_and_add(&s->drops, 1);
	return count(reason, XDP_DROP);
}

/* judge applies the lists and the per-source limits to one TCP segment to a
 * guarded port. */
static __always_inline int judge(struct addr *src, struct tcphdr *tcp)
{
	struct lpm_key key = {.prefixlen = 128, .addr = *src};
	if (bpf_map_lookup_elem(&allow_list, &key))
		return count(STAT_ALLOWED, XDP_PASS);

	__u64 now = bpf_ktime_get_ns();
	if (denied(src, now))
		return count(STAT_DROP_DENY, XDP_DROP);

	struct source *s = source_state(src, now);
	if (!s)
		return count(STAT_PASS, XDP_PASS);
	s->last_seen = now;

	if (pps_limit) {
		if (now - s->window_start >= pps_window_ns) {
			s->window_start = now;
			s->window_pkts = 0;
		}
		if (__sync_fetch_and_add(&s->window_pkts, 1) >= pps_limit)
			return drop(s, STAT_DROP_PPS);
	}

	if (!tcp->syn || tcp->ack)
		return count(STAT_PASS, XDP_PASS);
	__sync_fetch_and_add(&s->syns, 1);

	if (max_conns) {
		__u64 *conns = bpf_map_lookup_elem(&conn_count, src);
		if (conns && *conns >= max_conns)
			return drop(s, STAT_DROP_CONN_CAP);
	}

	if (syn_interval_ns) {
		/* GCRA (RFC 2697's token bucket as a virtual schedule): a SYN
		 * conforms when the schedule is at most the burst ahead of now. */
		__u64 tat = s->syn_tat > now ? s->syn_tat : now;
		if (tat + syn_interval_ns - now > syn_tolerance_ns)
			return drop(s, STAT_DROP_SYN_RATE);
		s->syn_tat = tat + syn_interval_ns;
	}
	return count(STAT_PASS, XDP_PASS);
}

static __always_inline int guarded(struct tcphdr *tcp)
{
	__u16 port = bpf_ntohs(tcp->dest);
	return bpf_map_lookup_elem(&guarded_ports, &port) != 0;
}

SEC("xdp")
int xdp_guard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return count(STAT_PARSE_ERROR, XDP_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;

	/* 802.1ad outer tag, then 802.1Q: at most two tags. */
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_))
			break;
		if (l3 + 4 > end)
			return count(STAT_PARSE_ERROR, XDP_PASS);
		proto = *(__u16 *)(l3 + 2);
		l3 += 4;
	}

	struct addr src;
	struct tcphdr *tcp;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return count(STAT_PARSE_ERROR, XDP_PASS);
		if (ip->ihl < 5)
			return count(STAT_PARSE_ERROR, XDP_PASS);
		if (ip->protocol != IPPROTO_TCP)
			return count(STAT_SKIPPED, XDP_PASS);
		/* Non-first fragments carry no TCP header (RFC 791). */
		if (ip->frag_off & bpf_htons(IP_OFFSET))
			return count(STAT_SKIPPED, XDP_PASS);
		tcp = l3 + ip->ihl * 4;
		map_v4(&src, ip->saddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return count(STAT_PARSE_ERROR, XDP_PASS);
		/* Only TCP directly after the fixed header is judged; extension
		 * headers pass untouched (RFC 8200 section 4). */
		if (ip6->nexthdr != IPPROTO_TCP)
			return count(STAT_SKIPPED, XDP_PASS);
		tcp = (void *)(ip6 + 1);
		__builtin_memcpy(&src, &ip6->saddr, sizeof(src));
	} else {
		return count(STAT_SKIPPED, XDP_PASS);
	}

	if ((void *)(tcp + 1) > end)
		return count(STAT_PARSE_ERROR, XDP_PASS);
	if (!guarded(tcp))
		return count(STAT_SKIPPED, XDP_PASS);
	return judge(&src, tcp);
}

static __always_inline void remote_addr(struct bpf_sock_ops *skops, struct addr *a)
{
	if (skops->family == AF_INET) {
		map_v4(a, skops->remote_ip4);
		return;
	}
	/* Volatile keeps clang from merging the 32-bit context reads into
	 * 64-bit ones, which the verifier rejects for bpf_sock_ops. */
	volatile __u32 *ip6 = skops->remote_ip6;
	__u32 w[4] = {ip6[0], ip6[1], ip6[2], ip6[3]};
	__builtin_memcpy(a, w, sizeof(*a));
}

/* sock_ops counts established connections to guarded ports per remote
 * address: +1 on BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, and -1 when the socket
 * reaches TCP_CLOSE (the state callback is enabled only on counted sockets,
 * so every decrement has its increment). */
SEC("sockops")
int sockops_conns(struct bpf_sock_ops *skops)
{
	struct addr a;
	__u64 *n;

	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;

	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
		__u16 port = skops->local_port; /* host byte order */
		if (!bpf_map_lookup_elem(&guarded_ports, &port))
			return 1;
		remote_addr(skops, &a);
		n = bpf_map_lookup_elem(&conn_count, &a);
		if (n) {
			__sync_fetch_and_add(n, 1);
		} else {
			__u64 one = 1;
			if (bpf_map_update_elem(&conn_count, &a, &one, BPF_NOEXIST)) {
				n = bpf_map_lookup_elem(&conn_count, &a);
				if (n)
					__sync_fetch_and_add(n, 1);
			}
		}
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	}
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE)
			return 1;
		remote_addr(skops, &a);
		n = bpf_map_lookup_elem(&conn_count, &a);
		if (n && *n > 0)
			__sync_fetch_and_add(n, -1);
		break;
	}
	return 1;
}
