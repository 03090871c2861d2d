package handlers

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// staticSite is edgeloop's built-in default origin: a page saying that
// edgeloop runs and how to point it at an app, plus the 1k.txt and
// 64k.txt bodies the benchmarks fetch.
//
//go:embed site
var staticSite embed.FS

// staticSiteDir is the embedded directory that maps to "/".
const staticSiteDir = "site"

// staticEmbeddedEntries builds the lookup table for the embedded site:
// "style.css" for files, "" and "dir/" for directory indexes, and "dir"
// for the redirect to "dir/". Everything a response needs is computed
// here once, so serving the site touches no file system and allocates
// nothing in this package.
func staticEmbeddedEntries(index string) (map[string]*staticEntry, error) {
	mod := staticEmbedModTime()
	m := make(map[string]*staticEntry)
	err := fs.WalkDir(staticSite, staticSiteDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, staticSiteDir), "/")
		if d.IsDir() {
			if rel != "" {
				m[rel] = &staticEntry{redirect: true}
			}
			return nil
		}
		body, err := staticSite.ReadFile(p)
		if err != nil {
			return err
		}
		// Embedded files carry no mtime, so the ETag is a content hash:
		// it stays put across restarts and changes only with the bytes.
		sum := sha256.Sum256(body)
		etag := make([]byte, 0, 18)
		etag = append(hex.AppendEncode(append(etag, '"'), sum[:8]), '"')
		e := newStaticEntry(rel, body, int64(len(body)), mod, etag)
		m[rel] = e
		if path.Base(rel) == index {
			if dir := path.Dir(rel); dir == "." {
				m[""] = e
			} else {
				m[dir+"/"] = e
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// staticEmbedModTime is the Last-Modified of embedded files: the mtime of
// the running executable, which changes exactly when the embedded bytes
// can. A fixed date stands in when the executable cannot be stat'ed.
func staticEmbedModTime() time.Time {
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil {
			return fi.ModTime().Truncate(time.Second)
		}
	}
	return time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
}
