package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RunOptions is what Serve needs from the command line.
type RunOptions struct {
	// Load reads and validates the configuration (file, environment and
	// flags). Serve calls it at start and again on every reload; its error
	// (FILE:LINE: reason for a bad file) refuses the reload.
	Load func() (*Config, error)
	// Logger builds the process's logger from the first config. If nil,
	// slog.Default is used.
	Logger func(*Config) *slog.Logger
	// Args are the command-line arguments (without the program name) that
	// workers and an upgraded binary are started with.
	Args []string
	// Stderr is where children write their logs. If nil, os.Stderr.
	Stderr io.Writer
	// Reconfigure, if set, is called with the config of every successful
	// reload, to apply what lives outside the Server (the log level).
	Reconfigure func(*Config)
}

func (o RunOptions) reconfigure(cfg *Config) {
	if o.Reconfigure != nil {
		o.Reconfigure(cfg)
	}
}

func (o RunOptions) logger(cfg *Config) *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger(cfg)
}

// Errors returned by Serve and its reload and upgrade requests.
var (
	ErrUpgradeFailed = errors.New("binary upgrade failed")
	ErrBusy          = errors.New("a reload or upgrade is already running")
	ErrStopping      = errors.New("server is stopping")
)

// Serve runs edgeloop as a whole process until ctx ends: one serving
// process when workers is 1, a supervisor of pinned worker processes when
// it is more, or a worker when started as one by a supervisor.
//
// SIGHUP (or POST /reload on the admin listener) re-reads the config; a
// config that fails to load is refused and logged, and the running one keeps
// serving. A good one is served by a new Server (one process) or a new
// generation of workers on the same sockets before the old one drains.
// SIGUSR2 (or POST /upgrade) re-executes the binary with the sockets
// inherited; the old process drains and exits once the new one serves.
func Serve(ctx context.Context, o RunOptions) error {
	spec, err := workerFromEnv()
	if err != nil {
		return err
	}
	cfg, err := o.Load()
	if err != nil {
		return err
	}
	if spec != nil {
		return runWorker(ctx, o, cfg, spec)
	}
	log := o.logger(cfg)
	p := &process{o: o, log: log, reqs: make(chan request), started: time.Now()}
	if p.exe, err = os.Executable(); err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	p.set = newListenerSet(log)
	if err := p.set.adoptFromEnv(); err != nil {
		return err
	}
	procSockets.Store(p.set)
	curProcess.Store(p)
	defer func() {
		curProcess.Store(nil)
		procSockets.Store(nil)
		p.set.closeAll()
	}()
	logTuning(log, cfg)
	n, err := WorkerCount(cfg)
	if err != nil {
		return err
	}
	if n > 1 {
		p.mode = newSupervisor(p)
	} else {
		raiseNoFile(log, cfg)
		p.mode = &single{p: p}
	}
	return p.run(ctx, cfg)
}

// curProcess is the running Serve, for the admin endpoints of a Server.
var curProcess atomic.Pointer[process]

// process is the control loop shared by the one-process and supervisor
// modes: it owns the sockets and turns signals and admin requests into
// reloads and upgrades, one at a time.
type process struct {
	o       RunOptions
	log     *slog.Logger
	exe     string // binary re-executed on upgrade (its path at start)
	set     *listenerSet
	mode    mode
	reqs    chan request
	started time.Time
	reloads atomic.Int64 // successful reloads
}

// mode is how a process serves: one Server, or a supervisor of workers.
type mode interface {
	start(ctx context.Context, cfg *Config) error // serve cfg
	reload(ctx context.Context, cfg *Config) error
	stop()                  // drain everything; returns when done
	died() <-chan error     // the serving side failed on its own
	status() map[string]any // for GET /workers
	workerCount() int       // for mode changes on reload
}

// request is a reload or upgrade asked through the admin listener.
type request struct {
	upgrade bool
	done    chan error
}

func (p *process) run(ctx context.Context, cfg *Config) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if err := p.mode.start(ctx, cfg); err != nil {
		p.mode.stop()
		return err
	}
	if err := notifyReady(readyMsg{PID: os.Getpid()}); err != nil {
		p.log.Warn("ready pipe", "err", err)
	}
	for {
		var r request
		select {
		case <-ctx.Done():
			p.mode.stop()
			return nil
		case err := <-p.mode.died():
			p.mode.stop()
			return err
		case sig := <-sigs:
			r.upgrade = sig == syscall.SIGUSR2
			p.log.Info("signal", "sig", sig.String())
		case r = <-p.reqs:
		}
		var err error
		if r.upgrade {
			err = p.upgrade(ctx)
		} else {
			err = p.reload(ctx)
		}
		if r.done != nil {
			r.done <- err
		}
		if errors.Is(err, errHandedOver) {
			p.mode.stop()
			p.log.Info("exiting after hand-over to the new process")
			return nil
		}
	}
}

// errHandedOver: a new process serves now; this one drains and exits.
var errHandedOver = errors.New("handed over to a new process")

// ask sends a reload or upgrade request to the control loop and waits for
// its outcome. nil for a successful upgrade means the new process serves.
func (p *process) ask(ctx context.Context, upgrade bool) error {
	r := request{upgrade: upgrade, done: make(chan error, 1)}
	select {
	case p.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(readyTimeout):
		return ErrBusy
	}
	select {
	case err := <-r.done:
		if errors.Is(err, errHandedOver) {
			return nil
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reload re-reads the config; a bad one is refused and the old one serves on.
func (p *process) reload(ctx context.Context) error {
	start := time.Now()
	cfg, err := p.o.Load()
	if err != nil {
		reloadsTotal.WithLabelValues("refused").Inc()
		// FILE:LINE: reason, as `edgeloop config check` prints it.
		p.log.Error("reload refused, still serving the previous config", "err", err.Error())
		return err
	}
	n, err := WorkerCount(cfg)
	if err != nil {
		reloadsTotal.WithLabelValues("refused").Inc()
		p.log.Error("reload refused, still serving the previous config", "err", err.Error())
		return err
	}
	if (n > 1) != (p.mode.workerCount() > 1) {
		// One process and a supervisor are different programs: switch by
		// re-executing, which inherits the sockets like an upgrade.
		p.log.Info("reload changes the process model: re-executing", "workers", n)
		return p.upgrade(ctx)
	}
	if err := p.mode.reload(ctx, cfg); err != nil {
		reloadsTotal.WithLabelValues("failed").Inc()
		p.log.Error("reload failed, still serving the previous config", "err", err.Error())
		return err
	}
	p.o.reconfigure(cfg)
	p.reloads.Add(1)
	reloadsTotal.WithLabelValues("ok").Inc()
	p.log.Info("reloaded", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// upgrade starts the binary again (the file at the path this process was
// started from, so a new version installed there takes over) with every
// held socket inherited, and waits until it serves. On success the caller
// drains and exits; on failure the child is killed and this process serves on.
func (p *process) upgrade(ctx context.Context) error {
	if _, err := p.o.Load(); err != nil {
		p.log.Error("upgrade refused: the config does not load", "err", err.Error())
		upgradesTotal.WithLabelValues("refused").Inc()
		return err
	}
	files, list := p.set.files(func(sockKey) bool { return true })
	pid, _, err := p.spawn(ctx, files, list, nil, false)
	if err != nil {
		upgradesTotal.WithLabelValues("failed").Inc()
		p.log.Error("upgrade failed, still serving", "err", err.Error())
		return fmt.Errorf("%w: %v", ErrUpgradeFailed, err)
	}
	upgradesTotal.WithLabelValues("ok").Inc()
	p.log.Info("upgrade: new process serves, draining this one", "new_pid", pid)
	return errHandedOver
}

// spawn starts the binary with files inherited (fd 3 onwards) and
// extraEnv, and waits for its ready line. A worker (asWorker) dies with its
// parent; an upgraded process must outlive it. It returns the child's pid,
// its ready message and, for workers, the running command.
func (p *process) spawn(ctx context.Context, files []*os.File, list []inheritedSocket, extraEnv []string, asWorker bool) (int, *childProc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	defer r.Close()
	inherit, _ := json.Marshal(list)
	cmd := exec.Command(p.exe, p.o.Args...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = p.o.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.ExtraFiles = append(append([]*os.File(nil), files...), w)
	cmd.Env = append(childEnv(os.Environ()),
		envInherit+"="+string(inherit),
		fmt.Sprintf("%s=%d", envReadyFD, 3+len(files)))
	cmd.Env = append(cmd.Env, extraEnv...)
	if asWorker {
		// Its own process group: a terminal's Ctrl-C reaches only the
		// supervisor, which drains the workers in order (and would
		// otherwise take the workers' exits for crashes). Pdeathsig stops
		// a worker whose supervisor was killed outright.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	} else {
		// A new session, so that a terminal's Ctrl-C aimed at the old
		// process group does not stop the successor.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, nil, err
	}
	w.Close()
	c := &childProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	msg, err := readReady(ctx, r, c.exited)
	if err != nil {
		_ = cmd.Process.Kill()
		<-c.exited
		return 0, nil, fmt.Errorf("new process %d: %w", cmd.Process.Pid, err)
	}
	c.ready = msg
	return cmd.Process.Pid, c, nil
}

// childProc is a started child and its exit.
type childProc struct {
	cmd    *exec.Cmd
	ready  readyMsg
	exited chan struct{}
	err    error // valid after exited is closed
}

// readReady waits for the child's ready line, its exit, or the timeout.
func readReady(ctx context.Context, r *os.File, exited <-chan struct{}) (readyMsg, error) {
	type result struct {
		msg readyMsg
		err error
	}
	res := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil {
			res <- result{err: errors.New("exited before it was ready (see its log above)")}
			return
		}
		var m readyMsg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			res <- result{err: fmt.Errorf("bad ready line %q", strings.TrimSpace(line))}
			return
		}
		res <- result{msg: m}
	}()
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case x := <-res:
		return x.msg, x.err
	case <-t.C:
		return readyMsg{}, fmt.Errorf("not ready within %s", readyTimeout)
	case <-ctx.Done():
		return readyMsg{}, ctx.Err()
	}
}

// childEnv is env without the hand-over variables of this process's own
// parent, which must not leak into its children.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		if strings.HasPrefix(kv, envInherit+"=") || strings.HasPrefix(kv, envReadyFD+"=") || strings.HasPrefix(kv, envWorker+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// single serves in this process. A reload builds a new Server on the same
// sockets and drains the old one; both serve for a moment, which is what
// makes the swap lossless (the kernel queue is never without an acceptor).
type single struct {
	p *process

	mu     sync.Mutex // guards the fields below
	cur    *generation
	old    sync.WaitGroup // generations still draining
	errc   chan error
	gen    int
	loaded time.Time
}

// generation is one Server and the context that ends it.
type generation struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *single) start(ctx context.Context, cfg *Config) error {
	m.errc = make(chan error, 1)
	return m.swap(ctx, cfg)
}

func (m *single) reload(ctx context.Context, cfg *Config) error { return m.swap(ctx, cfg) }

// swap starts a Server for cfg on the held sockets, then drains the old one.
func (m *single) swap(ctx context.Context, cfg *Config) error {
	m.mu.Lock()
	var prev *Server
	if m.cur != nil {
		prev = m.cur.srv
	}
	m.mu.Unlock()
	srv, err := newSuccessor(cfg, m.p.log, prev)
	if err != nil {
		return err
	}
	if err := srv.Listen(ctx); err != nil {
		return err
	}
	srv.takeOver()
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &generation{srv: srv, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	old := m.cur
	m.cur = g
	m.gen++
	m.loaded = time.Now()
	m.mu.Unlock()
	go func() {
		defer close(g.done)
		if err := srv.Run(gctx); err != nil {
			m.mu.Lock()
			current := m.cur == g
			m.mu.Unlock()
			if current {
				select {
				case m.errc <- err:
				default:
				}
			}
		}
	}()
	// Sockets no longer configured are closed; the old Server's own dups
	// keep them accepting until it has drained.
	keep := map[sockKey]bool{{Kind: kindAdmin, Addr: cfg.Admin}: true}
	for _, a := range cfg.Listen {
		keep[sockKey{Kind: kindPublic, Addr: a}] = true
	}
	m.p.set.retain(func(k sockKey) bool { return keep[k] })
	if old != nil {
		old.srv.handOff()
		m.old.Add(1)
		go func() {
			defer m.old.Done()
			old.cancel()
			<-old.done
		}()
	}
	return nil
}

func (m *single) stop() {
	m.mu.Lock()
	cur := m.cur
	m.cur = nil
	m.mu.Unlock()
	if cur != nil {
		cur.cancel()
		<-cur.done
	}
	m.old.Wait()
}

func (m *single) died() <-chan error { return m.errc }

func (m *single) workerCount() int { return 1 }

func (m *single) status() map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]any{
		"mode":       "single",
		"pid":        os.Getpid(),
		"generation": m.gen,
		"loaded":     m.loaded.UTC().Format(time.RFC3339),
		"workers":    []any{},
	}
}
