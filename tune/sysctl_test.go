package tune

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostLike is what a stock Debian kernel on this machine reports, in the
// /proc/sys file format (tab separated fields).
var hostLike = map[string]string{
	"net.core.somaxconn":                        "4096",
	"net.ipv4.tcp_max_syn_backlog":              "2048",
	"net.core.netdev_max_backlog":               "1000",
	"net.core.rmem_max":                         "4194304",
	"net.core.wmem_max":                         "4194304",
	"net.core.rmem_default":                     "212992",
	"net.core.wmem_default":                     "212992",
	"net.ipv4.tcp_rmem":                         "4096\t131072\t33554432",
	"net.ipv4.tcp_wmem":                         "4096\t16384\t4194304",
	"net.ipv4.ip_local_port_range":              "32768\t60999",
	"net.ipv4.tcp_fin_timeout":                  "60",
	"net.ipv4.tcp_tw_reuse":                     "2",
	"net.ipv4.tcp_fastopen":                     "1",
	"net.ipv4.tcp_syncookies":                   "1",
	"fs.file-max":                               "2466160",
	"fs.nr_open":                                "1048576",
	"net.core.busy_poll":                        "0",
	"net.core.busy_read":                        "0",
	"net.ipv4.tcp_slow_start_after_idle":        "1",
	"net.ipv4.tcp_notsent_lowat":                "4294967295",
	"net.ipv4.tcp_mtu_probing":                  "0",
	"net.ipv4.tcp_max_tw_buckets":               "131072",
	"net.core.default_qdisc":                    "pfifo_fast",
	"net.ipv4.tcp_congestion_control":           "cubic",
	"net.ipv4.tcp_available_congestion_control": "reno cubic bbr",
	// net.netfilter.nf_conntrack_max absent: conntrack not loaded.
}

// fakeRoot builds a /proc/sys lookalike in a temporary directory. A value of
// "<absent>" leaves the key out.
func fakeRoot(t *testing.T, base map[string]string, over map[string]string) Sysctl {
	t.Helper()
	return fakeRootIn(t, t.TempDir(), base, over)
}

func fakeRootIn(t *testing.T, root string, base map[string]string, over map[string]string) Sysctl {
	t.Helper()
	vals := map[string]string{}
	for k, v := range base {
		vals[k] = v
	}
	for k, v := range over {
		vals[k] = v
	}
	for k, v := range vals {
		if v == "<absent>" {
			continue
		}
		p := filepath.Join(root, strings.ReplaceAll(k, ".", "/"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Sysctl{Root: root}
}

func find(t *testing.T, ss []Setting, key string) Setting {
	t.Helper()
	for _, s := range ss {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("key %s not in settings", key)
	return Setting{}
}

func TestShowCompare(t *testing.T) {
	type want struct{ ok, missing, malformed bool }
	f := func(name string, p Profile, over map[string]string, key string, w want) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			s := fakeRoot(t, hostLike, over)
			ss, err := s.Show(p)
			if w.malformed != errors.Is(err, ErrMalformed) {
				t.Fatalf("Show err = %v, want malformed=%v", err, w.malformed)
			}
			st := find(t, ss, key)
			if st.OK != w.ok || st.Missing != w.missing || (st.Note != "" && !st.Missing) != w.malformed {
				t.Fatalf("%s: got %+v, want %+v", key, st, w)
			}
		})
	}
	no, yes := want{}, want{ok: true}
	f("limit below", "", nil, "net.core.somaxconn", no)
	f("limit equal", "", map[string]string{"net.core.somaxconn": "8192"}, "net.core.somaxconn", yes)
	f("limit above", "", map[string]string{"net.core.somaxconn": "65535"}, "net.core.somaxconn", yes)
	f("limit above balanced below throughput", ProfileThroughput, map[string]string{"net.core.somaxconn": "16384"}, "net.core.somaxconn", no)
	f("limit malformed", "", map[string]string{"net.core.somaxconn": "lots"}, "net.core.somaxconn", want{malformed: true})
	f("limit empty file", "", map[string]string{"net.core.somaxconn": ""}, "net.core.somaxconn", want{malformed: true})
	f("limit two fields", "", map[string]string{"net.core.somaxconn": "1 2"}, "net.core.somaxconn", want{malformed: true})
	f("timeout above", "", nil, "net.ipv4.tcp_fin_timeout", no)
	f("timeout below", "", map[string]string{"net.ipv4.tcp_fin_timeout": "10"}, "net.ipv4.tcp_fin_timeout", yes)
	f("watermark unlimited", ProfileLatency, nil, "net.ipv4.tcp_notsent_lowat", no)
	f("bool off", "", nil, "net.ipv4.tcp_slow_start_after_idle", no)
	f("bool on", "", map[string]string{"net.ipv4.tcp_slow_start_after_idle": "0"}, "net.ipv4.tcp_slow_start_after_idle", yes)
	f("enum loopback only", "", nil, "net.ipv4.tcp_tw_reuse", no)
	f("enum qdisc", "", map[string]string{"net.core.default_qdisc": "fq"}, "net.core.default_qdisc", yes)
	f("bits client only", "", nil, "net.ipv4.tcp_fastopen", no)
	f("bits superset", "", map[string]string{"net.ipv4.tcp_fastopen": "1027"}, "net.ipv4.tcp_fastopen", yes)
	f("bits malformed", "", map[string]string{"net.ipv4.tcp_fastopen": "0x3"}, "net.ipv4.tcp_fastopen", want{malformed: true})
	f("range narrow", "", nil, "net.ipv4.ip_local_port_range", no)
	f("range wider", "", map[string]string{"net.ipv4.ip_local_port_range": "1024\t65535"}, "net.ipv4.ip_local_port_range", yes)
	f("range shifted", "", map[string]string{"net.ipv4.ip_local_port_range": "1024\t50000"}, "net.ipv4.ip_local_port_range", no)
	f("range inverted", "", map[string]string{"net.ipv4.ip_local_port_range": "60000 1024"}, "net.ipv4.ip_local_port_range", want{malformed: true})
	f("range one field", "", map[string]string{"net.ipv4.ip_local_port_range": "1024"}, "net.ipv4.ip_local_port_range", want{malformed: true})
	f("fields all above", "", nil, "net.ipv4.tcp_rmem", yes)
	f("fields one below", "", nil, "net.ipv4.tcp_wmem", no)
	f("fields default below", "", map[string]string{"net.ipv4.tcp_rmem": "4096 65536 33554432"}, "net.ipv4.tcp_rmem", no)
	f("fields two only", "", map[string]string{"net.ipv4.tcp_rmem": "4096 65536"}, "net.ipv4.tcp_rmem", want{malformed: true})
	f("missing key", "", nil, "net.netfilter.nf_conntrack_max", want{missing: true})
	f("present key", "", map[string]string{"net.netfilter.nf_conntrack_max": "262144"}, "net.netfilter.nf_conntrack_max", yes)
	f("bbr available", "", nil, "net.ipv4.tcp_congestion_control", no)
	f("bbr in use", "", map[string]string{"net.ipv4.tcp_congestion_control": "bbr"}, "net.ipv4.tcp_congestion_control", yes)
	f("bbr unavailable", "", map[string]string{"net.ipv4.tcp_available_congestion_control": "reno cubic"}, "net.ipv4.tcp_congestion_control", want{missing: true})
	f("busy poll latency", ProfileLatency, nil, "net.core.busy_poll", no)
}

func TestShowProfileKeys(t *testing.T) {
	s := fakeRoot(t, hostLike, nil)
	for _, p := range Profiles {
		ss, err := s.Show(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		busy := false
		for _, st := range ss {
			if st.Recommended == "" || st.Why == "" {
				t.Errorf("%s: %s has no recommendation or reason", p, st.Key)
			}
			busy = busy || st.Key == "net.core.busy_poll"
		}
		if busy != (p == ProfileLatency) {
			t.Errorf("%s: busy_poll listed = %v", p, busy)
		}
	}
	if _, err := s.Show("fastest"); !errors.Is(err, ErrUnknownProfile) {
		t.Fatalf("Show(fastest) err = %v, want ErrUnknownProfile", err)
	}
}

func TestDiff(t *testing.T) {
	s := fakeRoot(t, hostLike, map[string]string{"net.core.somaxconn": "junk"})
	d, err := s.Diff(ProfileBalanced)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed for somaxconn", err)
	}
	got := map[string]bool{}
	for _, st := range d {
		got[st.Key] = true
		if st.OK || st.Missing {
			t.Errorf("Diff lists %+v", st)
		}
	}
	for _, k := range []string{"net.ipv4.tcp_wmem", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_fastopen", "net.ipv4.ip_local_port_range"} {
		if !got[k] {
			t.Errorf("Diff misses %s", k)
		}
	}
	for _, k := range []string{"net.core.somaxconn", "net.ipv4.tcp_rmem", "fs.file-max", "net.netfilter.nf_conntrack_max"} {
		if got[k] {
			t.Errorf("Diff lists %s", k)
		}
	}
}

func TestApplyFake(t *testing.T) {
	over := map[string]string{
		"net.core.rmem_max":            "67108864",              // above: stays
		"net.ipv4.tcp_rmem":            "8192\t65536\t33554432", // per field
		"net.ipv4.ip_local_port_range": "1024\t50000",           // widen the top only
		"net.ipv4.tcp_fastopen":        "1025",                  // keep extra bits
		"net.core.wmem_default":        "not-a-number",          // skipped
	}
	s := fakeRoot(t, hostLike, over)
	changes, err := s.Apply(ProfileBalanced)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Apply err = %v, want ErrMalformed for wmem_default", err)
	}
	want := map[string]string{
		"net.core.somaxconn":                 "8192",
		"net.core.rmem_max":                  "67108864",
		"net.ipv4.tcp_rmem":                  "8192 131072 33554432",
		"net.ipv4.tcp_wmem":                  "4096 16384 16777216",
		"net.ipv4.ip_local_port_range":       "1024 65535",
		"net.ipv4.tcp_fastopen":              "1027",
		"net.ipv4.tcp_fin_timeout":           "30",
		"net.ipv4.tcp_tw_reuse":              "1",
		"net.ipv4.tcp_notsent_lowat":         "131072",
		"net.ipv4.tcp_slow_start_after_idle": "0",
		"net.core.default_qdisc":             "fq",
		"net.ipv4.tcp_congestion_control":    "bbr",
		"fs.file-max":                        "2466160",
		"net.core.wmem_default":              "not-a-number",
		"net.core.busy_poll":                 "0", // not in balanced
	}
	for k, v := range want {
		if got, err := s.Read(k); err != nil || got != v {
			t.Errorf("after Apply %s = %q, %v; want %q", k, got, err, v)
		}
	}
	if _, err := os.Stat(s.path("net.netfilter.nf_conntrack_max")); !os.IsNotExist(err) {
		t.Errorf("Apply created a missing key: %v", err)
	}
	for _, c := range changes {
		if c.Old == c.New {
			t.Errorf("no-op change recorded: %+v", c)
		}
	}
	if d, _ := s.Diff(ProfileBalanced); len(d) != 0 {
		t.Errorf("Diff after Apply = %+v", d)
	}
	if err := Restore(changes); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		orig := normalize(hostLike[c.Key])
		if v, ok := over[c.Key]; ok {
			orig = normalize(v)
		}
		if got, _ := s.Read(c.Key); got != orig {
			t.Errorf("after Restore %s = %q, want %q", c.Key, got, orig)
		}
	}
	if _, err := s.Apply("nope"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("Apply(nope) err = %v", err)
	}
}

func TestApplyNeverLowers(t *testing.T) {
	// A host tuned beyond every profile: Apply must not write anything
	// except keys whose comparison is exact.
	s := fakeRoot(t, hostLike, map[string]string{
		"net.core.somaxconn":           "1000000",
		"net.ipv4.tcp_max_syn_backlog": "1000000",
		"net.ipv4.tcp_fin_timeout":     "5",
		"net.ipv4.tcp_rmem":            "1 1 1",
	})
	changes, err := s.Apply(ProfileThroughput)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		k := lookup(c.Key)
		if ok, _ := k.kind.check(c.New, c.Old); k.kind == atLeast && !ok {
			t.Errorf("%s lowered %s -> %s", c.Key, c.Old, c.New)
		}
	}
	for k, v := range map[string]string{"net.core.somaxconn": "1000000", "net.ipv4.tcp_fin_timeout": "5", "net.ipv4.tcp_rmem": "4096 262144 67108864"} {
		if got, _ := s.Read(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}
