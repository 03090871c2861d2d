package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// With workers, each worker has its own response cache and its own
// WebSocket hubs, while the kernel guard's maps are pinned and shared. The
// supervisor's admin listener is the node's one address, so it forwards:
// cache purges and publishes go to every worker (their counts are added
// up), guard requests go to one worker (any one sees the shared maps).

// fanOutBodyMax bounds a forwarded request body (a publish is at most the
// route's max_message, a purge a few URLs).
const fanOutBodyMax = 16 << 20

var fanOutClient = &http.Client{Timeout: 5 * time.Second}

// fanOutAdmin registers the forwarding endpoints on the supervisor's admin.
func (s *supervisor) fanOutAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /cache/purge", s.fanOut("purged"))
	mux.HandleFunc("POST /publish/{channel}", s.fanOut("delivered"))
	mux.HandleFunc("/guard/", s.toOneWorker)
}

// workerSlots returns the running workers' admin addresses, by slot.
func (s *supervisor) workerSlots() []string {
	admins := s.workerAdmins()
	slots := make([]int, 0, len(admins))
	for slot := range admins {
		slots = append(slots, slot)
	}
	sort.Ints(slots)
	out := make([]string, len(slots))
	for i, slot := range slots {
		out[i] = admins[slot]
	}
	return out
}

// forward sends r (with body) to one worker's admin and returns its status
// and body.
func forward(r *http.Request, addr string, body []byte) (int, []byte, error) {
	u := "http://" + addr + r.URL.Path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := fanOutClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// fanOutInput reads the request body to forward and the running workers'
// admin addresses; when either is missing it answers (413, 503) and
// reports false.
func (s *supervisor) fanOutInput(w http.ResponseWriter, r *http.Request) ([]byte, []string, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fanOutBodyMax))
	if err != nil {
		writeFanOut(w, http.StatusRequestEntityTooLarge, map[string]any{"error": err.Error()})
		return nil, nil, false
	}
	addrs := s.workerSlots()
	if len(addrs) == 0 {
		writeFanOut(w, http.StatusServiceUnavailable, map[string]any{"error": "no worker running"})
		return nil, nil, false
	}
	return body, addrs, true
}

// fanOut forwards a POST to every running worker and answers with the sum
// of the numeric JSON field of their answers. 404 when every worker says
// 404 (nothing configured to purge or publish to); 502 with the partial sum
// when a worker fails.
func (s *supervisor) fanOut(field string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, addrs, ok := s.fanOutInput(w, r)
		if !ok {
			return
		}
		total, notFound := 0.0, 0
		var firstErr string
		var lastBody []byte
		for _, addr := range addrs {
			status, b, err := forward(r, addr, body)
			switch {
			case err != nil:
				firstErr = fmt.Sprintf("worker %s: %v", addr, err)
			case status == http.StatusNotFound:
				notFound++
				lastBody = b
			case status >= 300:
				firstErr = fmt.Sprintf("worker %s: %d %s", addr, status, bytes.TrimSpace(b))
			default:
				var m map[string]any
				if err := json.Unmarshal(b, &m); err == nil {
					if v, ok := m[field].(float64); ok {
						total += v
					}
				}
			}
			if firstErr != "" {
				break
			}
		}
		out := map[string]any{field: int(total), "workers": len(addrs)}
		if ch := r.PathValue("channel"); ch != "" {
			out["channel"] = ch
		}
		switch {
		case firstErr != "":
			out["error"] = firstErr
			writeFanOut(w, http.StatusBadGateway, out)
		case notFound == len(addrs):
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(lastBody)
		default:
			writeFanOut(w, http.StatusOK, out)
		}
	}
}

// toOneWorker forwards a request to the first running worker.
func (s *supervisor) toOneWorker(w http.ResponseWriter, r *http.Request) {
	body, addrs, ok := s.fanOutInput(w, r)
	if !ok {
		return
	}
	status, b, err := forward(r, addrs[0], body)
	if err != nil {
		writeFanOut(w, http.StatusBadGateway, map[string]any{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeFanOut(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
