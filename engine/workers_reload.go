package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// A supervisor reloads its workers in place when the new config keeps the
// sockets as they are (same worker count, listen addresses, steering and
// socket tuning): each worker re-reads the config and swaps its Server the
// way the one-process mode does, so WebSocket connections on unchanged
// routes survive the reload. When the sockets change, a new generation of
// worker processes starts on the new sockets instead (startGeneration).

// curWorker is this process's worker loop when it runs as a worker, for
// its admin listener's POST /reload.
var curWorker atomic.Pointer[workerServer]

// workerServer runs a worker's Server and replaces it on reload.
type workerServer struct {
	o    RunOptions
	log  *slog.Logger
	reqs chan chan error
}

// workerGen is one Server of a worker and the context that ends it.
type workerGen struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (w *workerServer) start(ctx context.Context, srv *Server) *workerGen {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &workerGen{srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		g.err = srv.Run(gctx)
	}()
	return g
}

// serve runs srv until ctx ends or it fails, swapping in a new Server for
// every reload request.
func (w *workerServer) serve(ctx context.Context, srv *Server) error {
	cur := w.start(ctx, srv)
	var old sync.WaitGroup
	defer old.Wait()
	for {
		select {
		case <-ctx.Done():
			cur.cancel()
			<-cur.done
			return cur.err
		case <-cur.done:
			return cur.err
		case done := <-w.reqs:
			next, err := w.reload(ctx, cur.srv)
			if err == nil {
				prev := cur
				cur = next
				old.Go(func() {
					prev.cancel()
					<-prev.done
				})
			}
			done <- err
		}
	}
}

// reload loads the config again and starts a Server for it on the same
// sockets, taking over the running one's unchanged WebSocket routes.
func (w *workerServer) reload(ctx context.Context, prev *Server) (*workerGen, error) {
	cfg, err := w.o.Load()
	if err != nil {
		return nil, err
	}
	if cfg.Admin != "off" {
		cfg.Admin = workerAdminAddr // the held socket: the supervisor knows its port
	}
	srv, err := newSuccessor(cfg, w.log, prev)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(ctx); err != nil {
		return nil, err
	}
	srv.takeOver()
	w.o.reconfigure(cfg)
	w.log.Info("worker reloaded in place")
	return w.start(ctx, srv), nil
}

// ask queues a reload and waits for its outcome.
func (w *workerServer) ask(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case w.reqs <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// workerAdmin registers a worker's POST /reload, which the supervisor calls.
func (w *workerServer) workerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /reload", func(rw http.ResponseWriter, r *http.Request) {
		if err := w.ask(r.Context()); err != nil {
			http.Error(rw, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintln(rw, "reloaded")
	})
}

// sameSockets reports whether b needs exactly the sockets a has: then the
// workers can reload in place.
func sameSockets(a, b *Config) bool {
	na, errA := WorkerCount(a)
	nb, errB := WorkerCount(b)
	return errA == nil && errB == nil && na == nb &&
		slices.Equal(a.Listen, b.Listen) && a.Steer == b.Steer && reflect.DeepEqual(a.Tune, b.Tune)
}

// errInPlace: a worker could not reload in place.
var errInPlace = errors.New("worker did not reload in place")

// reloadInPlace asks every running worker to reload, in parallel, and
// returns the slots that did. It fails if any worker is not running or
// refuses; the caller then starts a new generation, which brings every
// worker to the new config.
func (s *supervisor) reloadInPlace(ctx context.Context, cfg *Config) ([]int, error) {
	s.mu.Lock()
	workers := s.workers
	s.mu.Unlock()
	// All or none: a worker that is not running (restarting, say) sends
	// the whole reload to a new generation before any worker changes.
	admins := make([]string, len(workers))
	for i, w := range workers {
		w.mu.Lock()
		admin, state := w.admin, w.state
		w.mu.Unlock()
		if admin == "" || state != "running" {
			return nil, fmt.Errorf("%w: worker %d is %s", errInPlace, w.slot, state)
		}
		admins[i] = admin
	}
	client := &http.Client{Timeout: readyTimeout}
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		admin := admins[i]
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+admin+"/reload", nil)
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = fmt.Errorf("%w: worker %d: %v", errInPlace, w.slot, err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				errs[i] = fmt.Errorf("%w: worker %d: %s", errInPlace, w.slot, strings.TrimSpace(string(b)))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var reloaded []int
		for i, w := range workers {
			if errs[i] == nil {
				reloaded = append(reloaded, w.slot)
			}
		}
		return reloaded, err
	}
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.cfg = cfg
	s.mu.Unlock()
	for _, w := range workers {
		w.mu.Lock()
		w.gen = gen
		w.mu.Unlock()
	}
	return nil, nil
}
