package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeloop/edgeloop/tune"
)

// Worker defaults.
const (
	// defaultWorkerProcs is GOMAXPROCS in a pinned worker unless the
	// GOMAXPROCS environment variable says otherwise. Measured (see
	// docs/workers.md): with the worker pinned to one CPU, a second P only
	// adds scheduler hand-offs between two threads on the same CPU.
	defaultWorkerProcs = 1
	// fdReserve is added to limits.max_connections when raising
	// RLIMIT_NOFILE: listeners, upstream pool connections, files, the
	// Go runtime's own descriptors.
	fdReserve = 1024
	// readyTimeout bounds how long a new worker or a new binary may take
	// to report that it serves.
	readyTimeout = 30 * time.Second
	// workerAdminAddr is a worker's admin address: a loopback port the
	// kernel picks, held for the worker's lifetime (a reload in place
	// serves its admin on the same port), listed by the supervisor.
	workerAdminAddr = "127.0.0.1:0"
	// Restart backoff for workers that die: it doubles from
	// minRestartDelay to maxRestartDelay, and falls back to the minimum
	// after a worker stayed up for stableUptime.
	minRestartDelay = 100 * time.Millisecond
	maxRestartDelay = 10 * time.Second
	stableUptime    = 30 * time.Second
)

// workerSpec tells a worker process who it is (EDGELOOP_WORKER).
type workerSpec struct {
	Slot int `json:"slot"`
	CPU  int `json:"cpu"` // -1: not pinned
	Gen  int `json:"gen"`
}

// readyMsg is the line a child writes to its ready pipe once it serves.
type readyMsg struct {
	PID   int    `json:"pid"`
	Admin string `json:"admin,omitempty"`
}

// WorkerCount resolves cfg.Workers: "auto" (-1) is one worker per CPU this
// process may use (cgroup cpuset and affinity, see tune.AllowedCPUs).
func WorkerCount(cfg *Config) (int, error) {
	if cfg.Workers >= 1 {
		return int(cfg.Workers), nil
	}
	cpus, err := tune.AllowedCPUs()
	if err != nil {
		return 0, fmt.Errorf("workers auto: %w", err)
	}
	return max(len(cpus), 1), nil
}

// workerCPUs assigns a CPU to each of n slots: slot i runs on the i-th
// allowed CPU, wrapping around when there are more workers than CPUs.
func workerCPUs(n int, allowed []int) []int {
	out := make([]int, n)
	for i := range out {
		if len(allowed) == 0 {
			out[i] = -1
			continue
		}
		out[i] = allowed[i%len(allowed)]
	}
	return out
}

// restartDelay is how long to wait before restarting a worker that died
// after running for uptime, when the previous delay was prev.
func restartDelay(prev, uptime time.Duration) time.Duration {
	if uptime >= stableUptime || prev <= 0 {
		return minRestartDelay
	}
	return min(2*prev, maxRestartDelay)
}

// workerFromEnv returns the spec in EDGELOOP_WORKER, or nil when this
// process is not a worker. The variable is cleared.
func workerFromEnv() (*workerSpec, error) {
	v := os.Getenv(envWorker)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(envWorker)
	var spec workerSpec
	if err := json.Unmarshal([]byte(v), &spec); err != nil {
		return nil, fmt.Errorf("%s: %v", envWorker, err)
	}
	return &spec, nil
}

// runWorker serves cfg as one worker of a supervisor: pinned to its CPU,
// on the sockets the supervisor passed, with a private admin listener on a
// loopback port that the supervisor scrapes and lists under /workers.
func runWorker(ctx context.Context, o RunOptions, cfg *Config, spec *workerSpec) error {
	// The supervisor handles reload and upgrade; the defaults of these
	// signals would kill the worker.
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR2)
	log := o.logger(cfg).With("worker", spec.Slot, "pid", os.Getpid())
	if spec.CPU >= 0 {
		if err := tune.PinToCPU(spec.CPU); err != nil {
			return fmt.Errorf("worker %d: %w", spec.Slot, err)
		}
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(defaultWorkerProcs)
	}
	raiseNoFile(log, cfg)
	set := newListenerSet(log)
	set.inheritOnly = true
	if err := set.adoptFromEnv(); err != nil {
		return err
	}
	procSockets.Store(set)
	defer procSockets.Store(nil)
	if cfg.Admin != "off" {
		cfg.Admin = workerAdminAddr
	}
	ws := &workerServer{o: o, log: log, reqs: make(chan chan error)}
	curWorker.Store(ws)
	defer curWorker.Store(nil)
	srv, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := srv.Listen(ctx); err != nil {
		return err
	}
	msg := readyMsg{PID: os.Getpid()}
	if a := srv.AdminAddr(); a != nil {
		msg.Admin = a.String()
	}
	if err := notifyReady(msg); err != nil {
		log.Warn("ready pipe", "err", err)
	}
	log.Info("worker serving", "cpu", spec.CPU, "gen", spec.Gen, "gomaxprocs", runtime.GOMAXPROCS(0))
	return ws.serve(ctx, srv)
}

// notifyReady writes msg to the pipe named by EDGELOOP_READY_FD, if any,
// and closes it.
func notifyReady(msg readyMsg) error {
	v := os.Getenv(envReadyFD)
	if v == "" {
		return nil
	}
	os.Unsetenv(envReadyFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return fmt.Errorf("%s=%q: not a descriptor", envReadyFD, v)
	}
	f := os.NewFile(uintptr(fd), "ready")
	defer f.Close()
	b, _ := json.Marshal(msg)
	_, err = f.Write(append(b, '\n'))
	return err
}

// raiseNoFile raises RLIMIT_NOFILE to what limits.max_connections needs
// and says clearly when the hard limit does not allow it.
func raiseNoFile(log *slog.Logger, cfg *Config) {
	need := uint64(max(cfg.Limits.MaxConnections, 0)) + fdReserve
	got, err := tune.RaiseNoFile(need)
	if err != nil {
		log.Warn("open file limit below what limits.max_connections needs: connections beyond it will fail to be accepted",
			"need", need, "got", got, "max_connections", cfg.Limits.MaxConnections,
			"fix", "raise the hard limit (LimitNOFILE= in the systemd unit, ulimit -Hn) or lower limits.max_connections",
			"err", err)
		return
	}
	log.Debug("open file limit", "soft", got, "need", need)
}

// Classic BPF constants the x/sys package does not define
// (include/uapi/linux/filter.h).
const (
	skfAdOff = 0xfffff000 // SKF_AD_OFF (-0x1000) as a load offset
	skfAdCPU = 36         // SKF_AD_CPU: the CPU running the filter
)

// steerProgram returns a classic BPF program for SO_ATTACH_REUSEPORT_CBPF
// that maps the CPU processing an incoming SYN to the index, in the
// reuseport group, of the worker pinned to that CPU. For a CPU without a
// worker it returns an index past the group, and the kernel falls back to
// its 4-tuple hash (net/core/sock_reuseport.c, run_bpf_filter).
func steerProgram(cpus []int) []unix.SockFilter {
	prog := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdOff + skfAdCPU}}
	for i, cpu := range cpus {
		prog = append(prog,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(cpu)},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: uint32(i)})
	}
	return append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff})
}

// attachSteering attaches (or, with cpus nil, detaches) the steering program
// on a reuseport group through one of its sockets; the program belongs to
// the group.
func attachSteering(f *os.File, cpus []int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if cpus == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
			if errors.Is(serr, unix.ENOENT) { // nothing attached
				serr = nil
			}
			return
		}
		prog := steerProgram(cpus)
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
	if err != nil {
		return err
	}
	return serr
}
