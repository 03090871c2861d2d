package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// workersAdmin registers the process endpoints on a Server's admin
// listener: GET /workers, POST /reload, POST /upgrade (only when the Server
// runs under Serve as the one serving process) and GET /tune.
func (s *Server) workersAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /tune", tuneHandler(s.cfg.Tune.Profile))
	if w := curWorker.Load(); w != nil {
		w.workerAdmin(mux)
		return
	}
	p := curProcess.Load()
	if p == nil {
		return
	}
	p.processAdmin(mux)
}

// processAdmin registers /workers, /reload and /upgrade.
func (p *process) processAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /workers", func(w http.ResponseWriter, _ *http.Request) {
		st := p.mode.status()
		st["reloads"] = p.reloads.Load()
		st["uptime_seconds"] = time.Since(p.started).Seconds()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	ask := func(upgrade bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := p.ask(r.Context(), upgrade); err != nil {
				// The reason first, alone: FILE:LINE: reason for a bad config.
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			if upgrade {
				fmt.Fprintln(w, "upgraded: a new process serves")
				return
			}
			fmt.Fprintln(w, "reloaded")
		}
	}
	mux.HandleFunc("POST /reload", ask(false))
	mux.HandleFunc("POST /upgrade", ask(true))
}

// newAdmin builds the supervisor's admin server: its own endpoints, and
// /metrics that merges its metrics with every worker's (labelled worker).
func (s *supervisor) newAdmin() *http.Server {
	mux := http.NewServeMux()
	g := &workerGatherer{s: s, client: &http.Client{Timeout: 2 * time.Second}}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if len(s.workerAdmins()) == 0 {
			http.Error(w, "no worker running", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /tune", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		profile := s.cfg.Tune.Profile
		s.mu.Unlock()
		tuneHandler(profile)(w, r)
	})
	s.p.processAdmin(mux)
	s.fanOutAdmin(mux)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
}

// workerGatherer gathers the supervisor's own metrics (labelled
// worker="supervisor") and each running worker's, scraped from its private
// admin listener (labelled worker="SLOT"), so one scrape of the supervisor
// sees the whole node. Safe for concurrent use.
type workerGatherer struct {
	s      *supervisor
	client *http.Client
}

func (g *workerGatherer) Gather() ([]*dto.MetricFamily, error) {
	own, err := prometheus.DefaultGatherer.Gather()
	labelFamilies(own, "supervisor")
	sets := [][]*dto.MetricFamily{own}
	admins := g.s.workerAdmins()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for slot, addr := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fams, err := g.scrape(addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", slot, err))
				return
			}
			labelFamilies(fams, strconv.Itoa(slot))
			sets = append(sets, fams)
		}()
	}
	wg.Wait()
	gs := make(prometheus.Gatherers, len(sets))
	for i, fams := range sets {
		gs[i] = prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil })
	}
	merged, merr := gs.Gather()
	if err == nil && len(errs) > 0 {
		err = errs[0]
	}
	if err == nil {
		err = merr
	}
	return merged, err
}

func (g *workerGatherer) scrape(addr string) ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	m, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	return out, nil
}

// labelFamilies adds worker=value to every metric.
func labelFamilies(fams []*dto.MetricFamily, value string) {
	name := "worker"
	for _, f := range fams {
		for _, m := range f.Metric {
			v := value
			m.Label = append(m.Label, &dto.LabelPair{Name: &name, Value: &v})
		}
	}
}
