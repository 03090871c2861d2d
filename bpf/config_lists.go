//go:build linux

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// The allow and deny maps are pinned, so their entries outlive a restart:
// that keeps the runtime ones (guard deny/allow by hand, escalations), but
// it would also keep an entry that a later config no longer lists. A
// pinned record of the entries that came from the config (configListsPin:
// key = the list key, value = which lists) lets the next Load remove those
// the new config dropped, and only those. The XDP program never reads it.
const configListsPin = "edgeloop_config_lists"

// Which lists a recorded config entry is in.
const (
	inAllow uint8 = 1 << iota
	inDeny
)

// syncConfigLists removes from the allow and deny maps the entries the
// previous config added and cfg no longer lists (the same prefix added by
// hand meanwhile goes too: the config owned it), then records cfg's. With
// no pin path the maps start empty and there is nothing to sync.
func (g *Guard) syncConfigLists(cfg Config) error {
	if cfg.PinPath == "" {
		return nil
	}
	rec, err := openConfigLists(cfg.PinPath, 2*cfg.MaxPrefixes)
	if err != nil {
		return err
	}
	defer rec.Close()
	want := map[guardLpmKey]uint8{}
	for _, k := range listKeys(cfg.Allow) {
		want[k] |= inAllow
	}
	for _, k := range listKeys(cfg.Deny) {
		want[k] |= inDeny
	}
	var key guardLpmKey
	var had uint8
	var stale []guardLpmKey
	it := rec.Iterate()
	for it.Next(&key, &had) {
		gone := had &^ want[key]
		if gone&inAllow != 0 {
			if err := g.objs.AllowList.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("drop a former config allow entry: %w", err)
			}
		}
		if gone&inDeny != 0 {
			if err := g.objs.DenyList.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("drop a former config deny entry: %w", err)
			}
		}
		if want[key] == 0 {
			stale = append(stale, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", configListsPin, err)
	}
	for _, k := range stale {
		if err := rec.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("update %s: %w", configListsPin, err)
		}
	}
	for k, bits := range want {
		if err := rec.Put(k, bits); err != nil {
			return fmt.Errorf("update %s: %w", configListsPin, err)
		}
	}
	return nil
}

// listKeys encodes ps as list keys, skipping those that do not encode
// (Load's own Allow and Deny calls report them).
func listKeys(ps []netip.Prefix) []guardLpmKey {
	out := make([]guardLpmKey, 0, len(ps))
	for _, p := range ps {
		if e, err := encodePrefix(p); err == nil {
			out = append(out, lpmKey(e))
		}
	}
	return out
}

// openConfigLists opens the pinned record under dir, creating it (or
// recreating it when an older layout or size is pinned).
func openConfigLists(dir string, maxEntries uint32) (*ebpf.Map, error) {
	spec := &ebpf.MapSpec{
		Name:       "edgeloop_cfglst",
		Type:       ebpf.Hash,
		KeySize:    uint32(binary.Size(guardLpmKey{})),
		ValueSize:  1,
		MaxEntries: max(maxEntries, 1),
	}
	path := filepath.Join(dir, configListsPin)
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err == nil {
		if spec.Compatible(m) == nil {
			return m, nil
		}
		m.Close()
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale %s: %w", configListsPin, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", configListsPin, err)
	}
	m, err = ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", configListsPin, err)
	}
	if err := m.Pin(path); err != nil {
		m.Close()
		if errors.Is(err, os.ErrExist) {
			// Another process (a worker beside this one) pinned it first.
			if m, err = ebpf.LoadPinnedMap(path, nil); err == nil {
				return m, nil
			}
		}
		return nil, fmt.Errorf("pin %s: %w", configListsPin, err)
	}
	return m, nil
}
