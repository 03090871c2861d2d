package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeloop/edgeloop/tune"
)

// wkStatus is GET /workers.
type wkStatus struct {
	Mode       string `json:"mode"`
	PID        int    `json:"pid"`
	Generation int    `json:"generation"`
	Workers    []struct {
		Slot     int    `json:"slot"`
		CPU      int    `json:"cpu"`
		PID      int    `json:"pid"`
		State    string `json:"state"`
		Restarts int    `json:"restarts"`
		Admin    string `json:"admin"`
	} `json:"workers"`
}

func wkWorkers(t *testing.T, admin string) wkStatus {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/workers")
	if err != nil {
		t.Fatalf("GET /workers: %v", err)
	}
	defer resp.Body.Close()
	var st wkStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /workers: %v", err)
	}
	return st
}

// wkAffinity reads Cpus_allowed_list from /proc/PID/status.
func wkAffinity(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	m := regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no Cpus_allowed_list in /proc/%d/status", pid)
	}
	return string(m[1])
}

// wkConfig is a config serving dir on /, without the per-IP rate limit
// (the load below comes from one address) or the access log.
func wkConfig(workers int, dir, extra string) string {
	return fmt.Sprintf("workers: %d\nlog: {access: false}\nrate_limit: {rate: \"off\"}\n%sroutes:\n  - path: /\n    root: %s\n", workers, extra, dir)
}

func wkSite(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestWorkersServePinnedAndRestarted(t *testing.T) {
	cfg := writeFile(t, "edgeloop.yaml", wkConfig(2, wkSite(t, "two workers\n"), ""))
	p := start(t, "--config", cfg)
	c := client()
	for range 10 {
		if resp, body := get(t, c, p.url("/")); resp.StatusCode != 200 || body != "two workers\n" {
			t.Fatalf("GET / = %d %q", resp.StatusCode, body)
		}
	}
	st := wkWorkers(t, p.admin)
	if st.Mode != "supervisor" || len(st.Workers) != 2 {
		t.Fatalf("/workers = %+v, want a supervisor with 2 workers", st)
	}
	allowed, err := tune.AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range st.Workers {
		if w.PID <= 0 || w.State != "running" || w.Admin == "" {
			t.Fatalf("worker %d: %+v", i, w)
		}
		if want := strconv.Itoa(allowed[i%len(allowed)]); w.CPU != allowed[i%len(allowed)] || wkAffinity(t, w.PID) != want {
			t.Errorf("worker %d (pid %d): cpu %d, Cpus_allowed_list %s, want %s", i, w.PID, w.CPU, wkAffinity(t, w.PID), want)
		}
	}
	// The supervisor's /metrics carries every worker's, labelled.
	resp, body := get(t, c, "http://"+p.admin+"/metrics")
	if resp.StatusCode != 200 || !strings.Contains(body, `worker="0"`) || !strings.Contains(body, `worker="1"`) ||
		!strings.Contains(body, "edgeloop_engine_requests_total{") {
		t.Fatalf("supervisor /metrics = %d, lacks the workers' series:\n%.2000s", resp.StatusCode, body)
	}

	// A worker killed outright is replaced on the same CPU.
	victim := st.Workers[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = wkWorkers(t, p.admin)
		w := st.Workers[0]
		if w.PID != victim.PID && w.State == "running" && w.Restarts == 1 {
			if got := wkAffinity(t, w.PID); got != strconv.Itoa(victim.CPU) {
				t.Errorf("restarted worker pid %d: Cpus_allowed_list %s, want %d", w.PID, got, victim.CPU)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker 0 not restarted within 10s: %+v\n%s", st, p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 10 {
		if resp, _ := get(t, c, p.url("/")); resp.StatusCode != 200 {
			t.Fatalf("GET / after restart = %d", resp.StatusCode)
		}
	}
	if !strings.Contains(p.logs(), "worker died, restarting") {
		t.Errorf("no restart in the log:\n%s", p.logs())
	}
}

// TestWorkersSteerCPU checks steer: cpu end to end: a connection made from
// a thread pinned to a CPU (on loopback the SYN is processed on the sending
// CPU) is served by the worker pinned to that CPU.
func TestWorkersSteerCPU(t *testing.T) {
	allowed, err := tune.AllowedCPUs()
	if err != nil || len(allowed) < 2 {
		t.Skipf("needs 2 usable CPUs (have %v, %v)", allowed, err)
	}
	cfg := writeFile(t, "edgeloop.yaml", wkConfig(2, wkSite(t, "steered\n"), "steer: cpu\n"))
	p := start(t, "--config", cfg)
	st := wkWorkers(t, p.admin)
	for _, w := range st.Workers {
		before := map[int]float64{}
		for _, o := range st.Workers {
			before[o.Slot] = wkServed(t, o.Admin)
		}
		const n = 5
		for range n {
			if err := wkGetFromCPU(w.CPU, p.addr); err != nil {
				t.Fatalf("from cpu %d: %v", w.CPU, err)
			}
		}
		for _, o := range st.Workers {
			got, want := wkServed(t, o.Admin)-before[o.Slot], 0.0
			if o.Slot == w.Slot {
				want = n
			}
			if got != want {
				t.Errorf("%d connections from cpu %d: worker %d (cpu %d) served %v, want %v", n, w.CPU, o.Slot, o.CPU, got, want)
			}
		}
	}
}

// wkServed returns the requests a worker has counted, read from its own
// admin listener.
func wkServed(t *testing.T, admin string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "edgeloop_engine_requests_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
}

// wkGetFromCPU makes one request on a new connection dialled from an OS
// thread pinned to cpu.
func wkGetFromCPU(cpu int, addr string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread is discarded with its affinity
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- err
			return
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			errc <- err
			return
		}
		b, err := io.ReadAll(conn)
		if err == nil && !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			err = fmt.Errorf("response %.40q", b)
		}
		errc <- err
	}()
	return <-errc
}

// TestReloadAndUpgradeUnderLoad keeps a few clients busy while the server
// reloads five times (one of them a broken config, refused) and upgrades
// its binary once, for one process and for two workers: no request may fail.
func TestReloadAndUpgradeUnderLoad(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) { testReloadUnderLoad(t, workers) })
	}
}

func testReloadUnderLoad(t *testing.T, workers int) {
	siteA, siteB := wkSite(t, "site A\n"), wkSite(t, "site B\n")
	cfgPath := writeFile(t, "edgeloop.yaml", wkConfig(workers, siteA, ""))
	p := start(t, "--config", cfgPath)
	first := wkWorkers(t, p.admin)

	// Steady load: 4 keep-alive clients, bounded by stop and a deadline.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hardStop := time.Now().Add(40 * time.Second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client()
			for time.Now().Before(hardStop) {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(p.url("/"))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
				time.Sleep(time.Millisecond) // steady, not saturating
			}
		}()
	}
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	c := client()
	waitBody := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, body := get(t, c, p.url("/"))
			if body == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("still serving %q, want %q\n%s", body, want, p.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for i := range 5 {
		if i == 2 {
			// A broken config is refused; the running one keeps serving.
			os.WriteFile(cfgPath, []byte(wkConfig(workers, siteA, "")+"    bogus_key: 1\n"), 0o644)
			code, _, stderr := runCLI(t, nil, "reload", "--admin", p.admin)
			if code != 1 || !regexp.MustCompile(regexp.QuoteMeta(cfgPath)+`:\d+: `).MatchString(stderr) {
				t.Fatalf("reload of a broken config: exit %d, stderr %q; want 1 and FILE:LINE: reason", code, stderr)
			}
			if !regexp.MustCompile(`reload refused.*` + regexp.QuoteMeta(cfgPath) + `:\d+: `).MatchString(p.logs()) {
				t.Fatalf("no FILE:LINE refusal in the log:\n%s", p.logs())
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		site := map[int]string{0: siteB, 1: siteA, 3: siteB, 4: siteA}[i]
		os.WriteFile(cfgPath, []byte(wkConfig(workers, site, "")), 0o644)
		if i%2 == 0 {
			if code, out, stderr := runCLI(t, nil, "reload", "--admin", p.admin); code != 0 {
				t.Fatalf("edgeloop reload: exit %d %q %q", code, out, stderr)
			}
		} else if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		want := "site A\n"
		if site == siteB {
			want = "site B\n"
		}
		waitBody(want)
		time.Sleep(300 * time.Millisecond)
	}
	if st := wkWorkers(t, p.admin); st.PID != first.PID || st.Generation <= first.Generation {
		t.Fatalf("after reloads /workers = %+v (first %+v)", st, first)
	}

	// Binary upgrade: a new process takes the sockets over, the old exits.
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var next wkStatus
	deadline := time.Now().Add(15 * time.Second)
	for {
		if next = wkWorkers(t, p.admin); next.PID != first.PID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new process after SIGUSR2\n%s", p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(next.PID, syscall.SIGTERM)
		select {
		case <-p.exited: // the last holder of the log pipe is gone
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(next.PID, syscall.SIGKILL)
			t.Errorf("upgraded process %d did not stop", next.PID)
		}
	})
	if next.Mode != first.Mode {
		t.Errorf("upgraded process mode %q, want %q", next.Mode, first.Mode)
	}
	time.Sleep(time.Second)
	if state := wkProcState(first.PID); state != "Z" && state != "" {
		t.Errorf("old process %d still running (state %q) after the upgrade", first.PID, state)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	if failed.Load() != 0 || ok.Load() < 500 {
		t.Fatalf("under load across 5 reloads and an upgrade: %d ok, %d failed (first: %v)\n%s",
			ok.Load(), failed.Load(), firstErr.Load(), p.logs())
	}
	t.Logf("workers=%d: %d requests, 0 failed, across 4 reloads, 1 refused reload and 1 upgrade", workers, ok.Load())
}

// wkProcState is the one-letter state of pid, or "" when it is gone.
func wkProcState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

func TestTuneShowDiff(t *testing.T) {
	code, out, stderr := runCLI(t, nil, "tune", "show")
	if code != 0 || !strings.Contains(out, "net.core.somaxconn") {
		t.Fatalf("tune show: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, nil, "tune", "show", "--profile", "latency", "--json")
	var shown struct {
		Profile  string `json:"profile"`
		Settings []struct {
			Key, Current, Recommended, Status string
			OK                                bool
			Missing                           bool
		} `json:"settings"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Profile != "latency" || len(shown.Settings) < 10 {
		t.Fatalf("tune show --json: exit %d\n%s", code, out)
	}
	soma, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range shown.Settings {
		if s.Key == "net.core.somaxconn" {
			found = true
			if s.Current != strings.TrimSpace(string(soma)) {
				t.Errorf("somaxconn current %q, /proc/sys has %q", s.Current, soma)
			}
		}
	}
	if !found {
		t.Fatalf("no somaxconn in %s", out)
	}
	code, out, _ = runCLI(t, nil, "tune", "diff", "--json")
	var diff struct {
		Settings []struct {
			Key     string
			OK      bool
			Missing bool
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &diff) != nil {
		t.Fatalf("tune diff --json: exit %d\n%s", code, out)
	}
	for _, s := range diff.Settings {
		if s.OK || s.Missing {
			t.Errorf("tune diff lists %s, which is ok or missing", s.Key)
		}
	}
	if code, out, _ := runCLI(t, nil, "tune", "--help"); code != 0 || !strings.Contains(out, "tune apply") {
		t.Errorf("tune --help: exit %d\n%s", code, out)
	}
	if code, _, stderr := runCLI(t, nil, "tune", "show", "--profile", "fastest"); code != 2 || !strings.Contains(stderr, "profile") {
		t.Errorf("tune show --profile fastest: exit %d %q, want 2", code, stderr)
	}
}

// TestTuneApply applies the balanced profile to this host for real (it only
// raises limits and queues; no busy polling) and writes every changed value
// back in cleanup.
func TestTuneApply(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
			t.Fatal("tune apply needs root")
		}
		t.Skip("tune apply needs root")
	}
	persist := filepath.Join(t.TempDir(), "90-edgeloop.conf")
	out, err := exec.Command(binPath, "tune", "apply", "--persist", "--persist-file", persist).CombinedOutput()
	var changes []tune.Change
	for _, line := range strings.Split(string(out), "\n") {
		key, rest, ok := strings.Cut(line, ": ")
		old, nw, ok2 := strings.Cut(rest, " -> ")
		if !ok || !ok2 || strings.ContainsAny(key, " /") {
			continue
		}
		changes = append(changes, tune.Change{Key: key, Path: "/proc/sys/" + strings.ReplaceAll(key, ".", "/"), Old: old, New: nw})
	}
	t.Cleanup(func() {
		if err := tune.Restore(changes); err != nil {
			t.Errorf("restore: %v", err)
		}
		for _, c := range changes {
			if cur, _ := (tune.Sysctl{}).Read(c.Key); cur != c.Old {
				t.Errorf("%s = %q after restore, want %q", c.Key, cur, c.Old)
			}
		}
	})
	if err != nil {
		t.Fatalf("tune apply: %v\n%s", err, out)
	}
	b, err := os.ReadFile(persist)
	if err != nil || !strings.Contains(string(b), "net.core.somaxconn = ") {
		t.Fatalf("--persist file: %v\n%s", err, b)
	}
	// What apply changed now meets the profile: diff no longer lists it.
	code, diff, _ := runCLI(t, nil, "tune", "diff", "--json")
	if code != 0 {
		t.Fatalf("tune diff: exit %d", code)
	}
	for _, c := range changes {
		if strings.Contains(diff, `"key": "`+c.Key+`"`) {
			t.Errorf("%s still differs after apply:\n%s", c.Key, diff)
		}
	}
	t.Logf("applied and restored %d keys", len(changes))

	// Without root it refuses with a clear message and exit status 2.
	dir, err := os.MkdirTemp("", "edgeloop-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "edgeloop")
	data, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	nobody := exec.Command(bin, "tune", "apply")
	nobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	msg, err := nobody.CombinedOutput()
	if nobody.ProcessState == nil || nobody.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), "needs root") {
		t.Errorf("tune apply as nobody: %v %q, want exit 2 and 'needs root'", err, msg)
	}
}

func TestNoFileLimitLogged(t *testing.T) {
	_, hard, err := tune.NoFile()
	if err != nil {
		t.Fatal(err)
	}
	want := hard + 10000
	cfg := writeFile(t, "edgeloop.yaml", fmt.Sprintf("limits: {max_connections: %d}\n", want))
	p := start(t, "--config", cfg)
	if !strings.Contains(p.logs(), "open file limit below what limits.max_connections needs") {
		t.Fatalf("no open-file-limit line for max_connections %d (hard limit %d):\n%s", want, hard, p.logs())
	}
	// One process: the same process endpoints on its admin listener.
	if st := wkWorkers(t, p.admin); st.Mode != "single" || st.PID != p.cmd.Process.Pid {
		t.Errorf("/workers = %+v, want mode single, pid %d", st, p.cmd.Process.Pid)
	}
	resp, body := get(t, client(), "http://"+p.admin+"/tune")
	if resp.StatusCode != 200 || !strings.Contains(body, `"key": "net.core.somaxconn"`) || !strings.Contains(body, `"profile": "balanced"`) {
		t.Errorf("GET /tune = %d\n%s", resp.StatusCode, body)
	}
}

// TestReloadLogLevel: a reload applies log.level (the access log is at
// info: shown at info, hidden after a reload to warn, shown again after
// one back to info).
func TestReloadLogLevel(t *testing.T) {
	conf := func(level string) string {
		return "log: {level: " + level + ", access: true}\nrate_limit: {rate: \"off\"}\n"
	}
	cfgPath := writeFile(t, "edgeloop.yaml", conf("info"))
	p := start(t, "--config", cfgPath)
	c := client()
	reload := func(level string) {
		t.Helper()
		os.WriteFile(cfgPath, []byte(conf(level)), 0o644)
		if code, out, stderr := runCLI(t, nil, "reload", "--admin", p.admin); code != 0 {
			t.Fatalf("edgeloop reload: exit %d %q %q", code, out, stderr)
		}
	}
	get(t, c, p.url("/?at=info1"))
	reload("warn")
	get(t, c, p.url("/?at=warn"))
	reload("info")
	get(t, c, p.url("/?at=info2"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.logs(), "at=info2") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := p.logs()
	if !strings.Contains(logs, "at=info1") || !strings.Contains(logs, "at=info2") || strings.Contains(logs, "at=warn") {
		t.Fatalf("access log lines: want the requests at info only\n%s", logs)
	}
}
