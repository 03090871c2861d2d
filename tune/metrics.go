package tune

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

const (
	namespace = "edgeloop"
	subsystem = "tune"
)

var (
	applied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem,
		Name: "sysctl_changes_total",
		Help: "Sysctl writes made by Apply, by key.",
	}, []string{"key"})

	socketOptionErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem,
		Name: "socket_option_errors_total",
		Help: "Optional socket options the kernel refused or capped on a listener, by option.",
	}, []string{"option"})

	metricsProfile atomic.Value // Profile the scrape compares against

	hostCollector = newSysctlCollector(Sysctl{}, func() Profile {
		p, _ := metricsProfile.Load().(Profile)
		return p
	})
)

func init() {
	prometheus.MustRegister(applied, socketOptionErrors, hostCollector)
}

// SetMetricsProfile sets the profile the tune metrics compare the host with
// (the zero value is balanced). Safe for concurrent use.
func SetMetricsProfile(p Profile) error {
	p, err := ParseProfile(string(p))
	if err != nil {
		return err
	}
	metricsProfile.Store(p)
	return nil
}

// sysctlCollector reads the profile's keys and the open file limits on every
// scrape, so the numbers are never stale. A scrape costs about 30 small
// reads of /proc. Safe for concurrent use.
type sysctlCollector struct {
	sys     Sysctl
	profile func() Profile

	value, ok, missing, nofile *prometheus.Desc
}

func newSysctlCollector(sys Sysctl, profile func() Profile) *sysctlCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, subsystem, n) }
	return &sysctlCollector{
		sys:     sys,
		profile: profile,
		value: prometheus.NewDesc(name("sysctl_value"),
			"Current numeric value of a sysctl the profile manages; field names the part of multi-value keys.",
			[]string{"key", "field"}, nil),
		ok: prometheus.NewDesc(name("sysctl_ok"),
			"1 if the sysctl meets the profile, 0 if not (present keys only).",
			[]string{"key", "profile"}, nil),
		missing: prometheus.NewDesc(name("sysctl_missing"),
			"1 for each sysctl of the profile that this host does not have or cannot use.",
			[]string{"key", "profile"}, nil),
		nofile: prometheus.NewDesc(name("nofile_limit"),
			"RLIMIT_NOFILE of this process.",
			[]string{"limit"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *sysctlCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.value
	ch <- c.ok
	ch <- c.missing
	ch <- c.nofile
}

// fieldNames labels the parts of multi-value keys.
var fieldNames = map[kind][]string{
	portRange: {"low", "high"},
	fieldsMin: {"min", "default", "max"},
}

// Collect implements prometheus.Collector.
func (c *sysctlCollector) Collect(ch chan<- prometheus.Metric) {
	p, err := ParseProfile(string(c.profile()))
	if err != nil {
		p = defaultProfile
	}
	settings, _ := c.sys.Show(p)
	for _, st := range settings {
		if st.Missing {
			ch <- prometheus.MustNewConstMetric(c.missing, prometheus.GaugeValue, 1, st.Key, string(p))
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.ok, prometheus.GaugeValue, b2f(st.OK), st.Key, string(p))
		k := lookup(st.Key).kind
		if k == exact {
			// Enums (qdisc, algorithm names) have no numeric value;
			// numeric booleans still do.
			if _, err := strconv.ParseFloat(st.Current, 64); err != nil {
				continue
			}
		}
		nums, err := ints(st.Current, -1)
		if err != nil {
			continue
		}
		names := fieldNames[k]
		for i, n := range nums {
			field := ""
			if i < len(names) {
				field = names[i]
			} else if len(nums) > 1 {
				field = strconv.Itoa(i)
			}
			ch <- prometheus.MustNewConstMetric(c.value, prometheus.GaugeValue, float64(n), st.Key, field)
		}
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		ch <- prometheus.MustNewConstMetric(c.nofile, prometheus.GaugeValue, float64(lim.Cur), "soft")
		ch <- prometheus.MustNewConstMetric(c.nofile, prometheus.GaugeValue, float64(lim.Max), "hard")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
