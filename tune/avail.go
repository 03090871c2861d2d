package tune

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Some keys take the name of a kernel component (a queueing discipline, a
// congestion control algorithm). Writing a name the kernel does not have
// fails (ENOENT for a qdisc), so Show marks such a key Missing instead of
// recommending what cannot be applied.

// availability checks, per key, whether the recommended choice exists. It
// returns a note for the operator when it does not.
var availability = map[string]func(s Sysctl, rec string) (ok bool, note string){
	"net.ipv4.tcp_congestion_control": func(s Sysctl, rec string) (bool, string) {
		list, err := s.Read(availableCongestion)
		if err != nil || slices.Contains(strings.Fields(list), rec) {
			return true, "" // unknown: let the write decide
		}
		return false, fmt.Sprintf("%s not loaded (modprobe tcp_%s), skipped", rec, rec)
	},
	"net.core.default_qdisc": func(s Sysctl, rec string) (bool, string) {
		if s.qdiscAvailable(rec) {
			return true, ""
		}
		return false, fmt.Sprintf("qdisc %s not in this kernel (CONFIG_NET_SCH_%s), skipped", rec, strings.ToUpper(rec))
	},
}

// qdiscAvailable reports whether the kernel has the qdisc, built in or as a
// module. It reads the kernel config from /proc/config.gz (for a test root,
// config.gz beside it), then looks for the module; when nothing can tell,
// it answers true and leaves the decision to the write.
func (s Sysctl) qdiscAvailable(name string) bool {
	if v, ok := s.kernelConfig("CONFIG_NET_SCH_" + strings.ToUpper(name)); ok {
		return v == "y" || v == "m"
	}
	if filepath.Clean(s.root()) != defaultSysctlRoot {
		return true
	}
	if _, err := os.Stat("/sys/module/sch_" + name); err == nil {
		return true
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		rel := unix.ByteSliceToString(u.Release[:])
		if m, _ := filepath.Glob(filepath.Join("/lib/modules", rel, "kernel/net/sched/sch_"+name+".ko*")); len(m) > 0 {
			return true
		}
		if _, err := os.Stat(filepath.Join("/lib/modules", rel)); err == nil {
			return false // module tree present, module absent: only built-in remains, which /sys/module may not show
		}
	}
	return true
}

// configCache holds kernelConfig answers by config path and option: the
// running kernel's config cannot change, and gunzipping it costs about 2 ms,
// too much for every metrics scrape. Safe for concurrent use.
var configCache sync.Map // configKey -> configAnswer

type configKey struct{ path, option string }

type configAnswer struct {
	value string
	ok    bool
}

// kernelConfig returns the value of one CONFIG_ option ("y", "m", a string,
// or "" if "is not set") and whether the kernel config could be read.
func (s Sysctl) kernelConfig(option string) (string, bool) {
	k := configKey{filepath.Join(filepath.Dir(filepath.Clean(s.root())), "config.gz"), option}
	if a, ok := configCache.Load(k); ok {
		return a.(configAnswer).value, a.(configAnswer).ok
	}
	v, ok := readKernelConfig(k.path, option)
	configCache.Store(k, configAnswer{v, ok})
	return v, ok
}

func readKernelConfig(path, option string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, option+"="); ok {
			return v, true
		}
	}
	if sc.Err() != nil {
		return "", false
	}
	return "", true // absent or "# ... is not set"
}

// unavailableWrite reports whether a failed write means the named choice is
// missing from the kernel rather than a bad value or a permission problem.
func unavailableWrite(err error, value string) bool {
	return errors.Is(err, fs.ErrNotExist) && strings.IndexFunc(value, func(r rune) bool {
		return r < '0' || r > '9'
	}) == 0
}
