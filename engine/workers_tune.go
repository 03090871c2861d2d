package engine

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/edgeloop/edgeloop/tune"
)

// logTuning sets the profile the tune metrics compare against and logs, in
// one line, the sysctls below the configured profile's recommendation.
func logTuning(log *slog.Logger, cfg *Config) {
	profile := tune.Profile(cfg.Tune.Profile)
	if err := tune.SetMetricsProfile(profile); err != nil {
		log.Warn("tune profile", "err", err)
		return
	}
	settings, err := tune.Sysctl{}.Show(profile)
	if err != nil {
		log.Debug("reading sysctls", "err", err)
	}
	var below []string
	for _, st := range settings {
		if !st.OK && !st.Missing {
			below = append(below, st.Key+"="+strings.ReplaceAll(st.Current, " ", ",")+"<"+strings.ReplaceAll(st.Recommended, " ", ","))
		}
	}
	if len(below) > 0 {
		log.Warn("sysctls below the tune profile (see `edgeloop tune diff`, GET /tune on the admin listener)",
			"profile", string(profile), "count", len(below), "keys", strings.Join(below, " "))
	}
}

// tuneHandler serves GET /tune: the profile's keys as found on this host.
func tuneHandler(profile string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := tune.Profile(profile)
		if q := r.URL.Query().Get("profile"); q != "" {
			var err error
			if p, err = tune.ParseProfile(q); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		settings, err := tune.Sysctl{}.Show(p)
		out := map[string]any{"profile": string(p), "settings": TuneRows(settings)}
		if err != nil {
			out["error"] = err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	}
}

// TuneRow is one sysctl of a profile in JSON (GET /tune, `edgeloop tune
// show --json`).
type TuneRow struct {
	Key         string `json:"key"`
	Current     string `json:"current"`
	Recommended string `json:"recommended"`
	Status      string `json:"status"`
	OK          bool   `json:"ok"`
	Missing     bool   `json:"missing,omitempty"`
	Why         string `json:"why"`
	Note        string `json:"note,omitempty"`
}

// TuneRows converts settings for JSON output.
func TuneRows(settings []tune.Setting) []TuneRow {
	out := make([]TuneRow, len(settings))
	for i, st := range settings {
		out[i] = TuneRow{Key: st.Key, Current: st.Current, Recommended: st.Recommended, Status: st.Status(),
			OK: st.OK, Missing: st.Missing, Why: st.Why, Note: st.Note}
	}
	return out
}
