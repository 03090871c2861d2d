package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// maxPurgeBody bounds a purge request's body.
const maxPurgeBody = 64 << 10

// purgeRequest is the body of POST /cache/purge: any mix of exact URLs,
// URL prefixes and surrogate keys. A single string or a list is accepted
// for each key, in JSON or as form fields (url=...&tag=...).
type purgeRequest struct {
	URL    stringList `json:"url"`
	Prefix stringList `json:"prefix"`
	Tag    stringList `json:"tag"`
}

// stringList decodes a JSON string or array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = many
	return nil
}

// cacheAdmin registers POST /cache/purge on the admin listener:
//
//	{"url": "http://host/path"}     every variant of one URL
//	{"prefix": "http://host/dir/"}  every URL starting with it
//	{"tag": "key"}                  every response whose Surrogate-Key or
//	                                Cache-Tag listed the key
//
// The answer is {"purged": N}, N the stored responses removed.
func (s *Server) cacheAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /cache/purge", s.handlePurge)
}

func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request) {
	if s.cache == nil {
		writePurgeJSON(w, http.StatusNotFound, map[string]any{"error": "no route has the cache on"})
		return
	}
	pr, err := parsePurge(r)
	if err != nil {
		writePurgeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	n := 0
	for _, u := range pr.URL {
		k, err := s.cache.PurgeURL(u)
		if err != nil {
			writePurgeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("url %q: %v", u, err), "purged": n})
			return
		}
		n += k
	}
	for _, p := range pr.Prefix {
		k, err := s.cache.PurgePrefix(p)
		if err != nil {
			writePurgeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("prefix %q: %v", p, err), "purged": n})
			return
		}
		n += k
	}
	for _, t := range pr.Tag {
		n += s.cache.PurgeTag(t)
	}
	writePurgeJSON(w, http.StatusOK, map[string]any{"purged": n})
}

// parsePurge reads a JSON body, or form fields (body or query string).
func parsePurge(r *http.Request) (purgeRequest, error) {
	var pr purgeRequest
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxPurgeBody))
	if err != nil {
		return pr, fmt.Errorf("read body: %v", err)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	trimmed := strings.TrimSpace(string(body))
	if ct == "application/json" || strings.HasPrefix(trimmed, "{") {
		dec := json.NewDecoder(strings.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pr); err != nil {
			return pr, fmt.Errorf("bad JSON body: %v", err)
		}
	} else {
		form, err := url.ParseQuery(trimmed)
		if err != nil {
			return pr, fmt.Errorf("bad form body: %v", err)
		}
		for k, v := range r.URL.Query() {
			form[k] = append(form[k], v...)
		}
		for k := range form {
			if k != "url" && k != "prefix" && k != "tag" {
				return pr, fmt.Errorf("unknown field %q (want url, prefix or tag)", k)
			}
		}
		pr.URL, pr.Prefix, pr.Tag = form["url"], form["prefix"], form["tag"]
	}
	if len(pr.URL)+len(pr.Prefix)+len(pr.Tag) == 0 {
		return pr, errors.New(`nothing to purge: give "url", "prefix" or "tag"`)
	}
	return pr, nil
}

func writePurgeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
