package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/edgeloop/edgeloop/tune"
)

// supervisor runs workers: one process per slot, each pinned to a CPU and
// accepting on its own SO_REUSEPORT socket of every public address. The
// supervisor creates and holds those sockets, and passes slot i's to worker
// i (ExtraFiles), so a socket outlives its worker: a restarted worker, or
// the next generation after a reload, accepts from the same kernel queue,
// and no connection waiting in it is lost. It also owns the configured admin
// address. Its methods are safe for concurrent use.
type supervisor struct {
	p *process

	mu      sync.Mutex // guards the fields below
	cfg     *Config
	gen     int
	workers []*worker // current generation, by slot
	stopped bool
	admin   *http.Server
	// adminAddr is the admin address as first configured: the supervisor
	// keeps its admin listener for its lifetime.
	adminAddr string

	draining sync.WaitGroup // old generations and stopped workers
	errc     chan error
}

// worker is one worker process slot of a generation. Fields after mu are
// guarded by mu.
type worker struct {
	slot, cpu, gen int

	mu       sync.Mutex
	child    *childProc
	pid      int
	admin    string
	started  time.Time
	restarts int
	delay    time.Duration // last restart delay
	state    string        // starting, running, restarting, draining, stopped
	stopping bool          // asked to stop: do not restart
}

func newSupervisor(p *process) *supervisor {
	return &supervisor{p: p, errc: make(chan error, 1)}
}

func (s *supervisor) died() <-chan error { return s.errc }

func (s *supervisor) workerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.workers)
}

func (s *supervisor) start(ctx context.Context, cfg *Config) error {
	s.adminAddr = cfg.Admin
	// The kernel connection cap (sock_ops on edgeloop's cgroup) counts the
	// connections of listening sockets created inside that cgroup. The
	// supervisor creates the workers' sockets, so it joins before it does;
	// the workers inherit the cgroup and load the guard themselves.
	joinGuardCgroup(s.p.log, cfg)
	if cfg.Admin != "off" {
		ln, err := s.p.set.listener(ctx, kindAdmin, cfg.Admin, socketConfig(cfg, kindAdmin))
		if err != nil {
			return fmt.Errorf("admin listen %s: %w", cfg.Admin, err)
		}
		s.admin = s.newAdmin()
		go func() { _ = s.admin.Serve(ln) }()
	}
	if err := s.startGeneration(ctx, cfg); err != nil {
		return err
	}
	for _, a := range cfg.Listen {
		s.p.log.Info("listening", "addr", s.p.set.bound(kindPublic, a).String(), "transport", cfg.Transport,
			"workers", len(s.workers), "steer", cfg.Steer)
	}
	if s.admin != nil {
		s.p.log.Info("admin listening", "addr", s.p.set.bound(kindAdmin, cfg.Admin).String())
	}
	return nil
}

func (s *supervisor) reload(ctx context.Context, cfg *Config) error {
	s.mu.Lock()
	if cfg.Admin != s.adminAddr {
		s.p.log.Warn("admin address changes need a restart; keeping the current one", "admin", s.adminAddr)
	}
	prev := s.cfg
	s.mu.Unlock()
	if prev != nil && sameSockets(prev, cfg) {
		reloaded, err := s.reloadInPlace(ctx, cfg)
		if err == nil {
			s.p.log.Info("workers reloaded in place")
			return nil
		}
		s.p.log.Warn("reload in place failed: starting a new generation of workers", "err", err.Error())
		if gerr := s.startGeneration(ctx, cfg); gerr != nil {
			if len(reloaded) > 0 {
				// No way back for those: they re-read the (new) file.
				return fmt.Errorf("%w; workers %v run the new config, the others the previous one", gerr, reloaded)
			}
			return gerr
		}
		return nil
	}
	return s.startGeneration(ctx, cfg)
}

// startGeneration makes the sockets cfg needs, starts one worker per slot
// and waits until all serve; then it drains the previous generation. If a
// worker fails to start, the new generation is stopped and the previous
// one serves on.
func (s *supervisor) startGeneration(ctx context.Context, cfg *Config) error {
	n, err := WorkerCount(cfg)
	if err != nil {
		return err
	}
	allowed, err := tune.AllowedCPUs()
	if err != nil {
		s.p.log.Warn("cannot read the allowed CPUs: workers are not pinned", "err", err)
	}
	cpus := workerCPUs(n, allowed)
	sc := socketConfig(cfg, kindPublic)
	sc.ReusePort = true
	for _, a := range cfg.Listen {
		for slot := range n {
			if _, err := s.p.set.socket(ctx, sockKey{Kind: kindPublic, Addr: a, Slot: slot}, sc); err != nil {
				return fmt.Errorf("listen %s (worker %d): %w", a, slot, err)
			}
		}
		var steer []int
		if cfg.Steer == "cpu" {
			steer = cpus
		}
		if g := s.p.set.group(a); len(g) > 0 {
			if err := attachSteering(g[0], steer); err != nil {
				if steer != nil {
					return fmt.Errorf("steer: cpu on %s: attach SO_ATTACH_REUSEPORT_CBPF: %w", a, err)
				}
				s.p.log.Warn("detach reuseport program", "addr", a, "err", err)
			}
		}
	}
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	fresh := make([]*worker, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for slot := range n {
		w := &worker{slot: slot, cpu: cpus[slot], gen: gen, state: "starting"}
		fresh[slot] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[slot] = s.startWorker(ctx, cfg, w)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, w := range fresh {
			s.stopWorker(w)
		}
		return err
	}
	s.mu.Lock()
	old := s.workers
	s.workers = fresh
	s.cfg = cfg
	s.mu.Unlock()
	for _, w := range fresh {
		s.watch(ctx, cfg, w)
	}
	for _, w := range old {
		s.stopWorker(w)
	}
	// Sockets of dropped addresses and slots close after the old workers,
	// which hold their own copies, have drained.
	keep := map[sockKey]bool{{Kind: kindAdmin, Addr: s.adminAddr}: true}
	for _, a := range cfg.Listen {
		for slot := range n {
			keep[sockKey{Kind: kindPublic, Addr: a, Slot: slot}] = true
		}
	}
	s.p.set.retain(func(k sockKey) bool { return keep[k] })
	return nil
}

// startWorker starts w's process with its slot's sockets and waits until it
// serves.
func (s *supervisor) startWorker(ctx context.Context, cfg *Config, w *worker) error {
	files, list := s.p.set.files(func(k sockKey) bool { return k.Kind == kindPublic && k.Slot == w.slot && cfg.hasListen(k.Addr) })
	for i := range list {
		list[i].Slot = 0 // the worker sees its one socket per address
	}
	spec, _ := json.Marshal(workerSpec{Slot: w.slot, CPU: w.cpu, Gen: w.gen})
	pid, child, err := s.p.spawn(ctx, files, list, []string{envWorker + "=" + string(spec)}, true)
	if err != nil {
		w.mu.Lock()
		w.state = "failed"
		w.mu.Unlock()
		return fmt.Errorf("worker %d: %w", w.slot, err)
	}
	w.mu.Lock()
	w.child, w.pid, w.admin, w.started, w.state = child, pid, child.ready.Admin, time.Now(), "running"
	w.mu.Unlock()
	workerStarts.Inc()
	return nil
}

func (c *Config) hasListen(addr string) bool {
	for _, a := range c.Listen {
		if a == addr {
			return true
		}
	}
	return false
}

// watch restarts w's process whenever it dies without being asked to,
// waiting restartDelay between attempts.
func (s *supervisor) watch(ctx context.Context, cfg *Config, w *worker) {
	go func() {
		for {
			w.mu.Lock()
			child := w.child
			w.mu.Unlock()
			if child == nil {
				return
			}
			<-child.exited
			w.mu.Lock()
			if w.stopping {
				w.state = "stopped"
				w.mu.Unlock()
				return
			}
			uptime := time.Since(w.started)
			w.delay = restartDelay(w.delay, uptime)
			w.restarts++
			w.state = "restarting"
			delay := w.delay
			w.mu.Unlock()
			workerDeaths.Inc()
			s.p.log.Warn("worker died, restarting", "worker", w.slot, "pid", child.cmd.Process.Pid,
				"status", child.cmd.ProcessState.String(), "uptime", uptime.Round(time.Millisecond), "delay", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			w.mu.Lock()
			stop := w.stopping
			w.mu.Unlock()
			if stop {
				return
			}
			if err := s.startWorker(ctx, cfg, w); err != nil {
				s.p.log.Error("worker restart failed", "worker", w.slot, "err", err.Error())
				w.mu.Lock()
				w.child = &childProc{exited: closedChan, cmd: child.cmd}
				w.started = time.Now()
				w.mu.Unlock()
				continue
			}
			s.p.log.Info("worker restarted", "worker", w.slot, "pid", w.pid, "cpu", w.cpu)
		}
	}()
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// stopWorker asks w to drain (SIGTERM) and, past the drain timeout and a
// grace second, kills it. It does not wait.
func (s *supervisor) stopWorker(w *worker) {
	w.mu.Lock()
	w.stopping = true
	child := w.child
	if child == nil || child.cmd == nil || child.cmd.Process == nil {
		w.mu.Unlock()
		return
	}
	w.state = "draining"
	w.mu.Unlock()
	drain := time.Duration(defaultDrainTimeout)
	s.mu.Lock()
	if s.cfg != nil {
		drain = s.cfg.Timeouts.Drain.D()
	}
	s.mu.Unlock()
	_ = child.cmd.Process.Signal(syscall.SIGTERM)
	s.draining.Add(1)
	go func() {
		defer s.draining.Done()
		select {
		case <-child.exited:
		case <-time.After(drain + 5*time.Second):
			s.p.log.Warn("worker did not drain in time, killing", "worker", w.slot, "pid", child.cmd.Process.Pid)
			_ = child.cmd.Process.Kill()
			<-child.exited
		}
		w.mu.Lock()
		w.state = "stopped"
		w.mu.Unlock()
	}()
}

// stop drains every worker and closes the admin listener.
func (s *supervisor) stop() {
	s.mu.Lock()
	workers := s.workers
	s.stopped = true
	s.mu.Unlock()
	for _, w := range workers {
		s.stopWorker(w)
	}
	s.draining.Wait()
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.admin.Shutdown(ctx)
		cancel()
	}
	s.p.log.Info("stopped")
}

// workerStatus is one row of GET /workers.
type workerStatus struct {
	Slot     int     `json:"slot"`
	CPU      int     `json:"cpu"`
	PID      int     `json:"pid"`
	Gen      int     `json:"generation"`
	State    string  `json:"state"`
	Restarts int     `json:"restarts"`
	Uptime   float64 `json:"uptime_seconds"`
	Admin    string  `json:"admin,omitempty"`
}

func (s *supervisor) status() map[string]any {
	s.mu.Lock()
	workers, gen := s.workers, s.gen
	s.mu.Unlock()
	rows := make([]workerStatus, 0, len(workers))
	for _, w := range workers {
		w.mu.Lock()
		rows = append(rows, workerStatus{
			Slot: w.slot, CPU: w.cpu, PID: w.pid, Gen: w.gen, State: w.state, Restarts: w.restarts,
			Uptime: time.Since(w.started).Seconds(), Admin: w.admin,
		})
		w.mu.Unlock()
	}
	return map[string]any{
		"mode":       "supervisor",
		"pid":        os.Getpid(),
		"generation": gen,
		"workers":    rows,
	}
}

// workerAdmins returns the admin addresses of the running workers by slot.
func (s *supervisor) workerAdmins() map[int]string {
	s.mu.Lock()
	workers := s.workers
	s.mu.Unlock()
	out := make(map[int]string, len(workers))
	for _, w := range workers {
		w.mu.Lock()
		if w.admin != "" && w.state == "running" {
			out[w.slot] = w.admin
		}
		w.mu.Unlock()
	}
	return out
}
