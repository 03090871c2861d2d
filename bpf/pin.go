//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// wellKnownBPFFS is where bpffs is conventionally mounted. It is a plain
// sysfs directory until someone mounts one (systemd does; these machines do
// not), and sysfs refuses mkdir, so a pin path below it needs the mount.
const wellKnownBPFFS = "/sys/fs/bpf"

// isBPFFS reports whether path is on a bpffs.
func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}

func mountBPFFS(dir string) error {
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	return nil
}

// ensurePinDir makes dir a directory on a bpffs, mounting one if needed: on
// /sys/fs/bpf when dir is below it, else on dir itself.
func ensurePinDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		ok, err := isBPFFS(dir)
		if err != nil {
			return err
		}
		if !ok {
			return mountBPFFS(dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent == wellKnownBPFFS {
		ok, err := isBPFFS(parent)
		if err != nil {
			return err
		}
		if !ok {
			if err := mountBPFFS(parent); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin path: %w", err)
	}
	ok, err := isBPFFS(dir)
	if err != nil {
		return err
	}
	if !ok {
		return mountBPFFS(dir)
	}
	return nil
}

// dropIncompatiblePins removes pinned maps that spec's maps cannot reuse
// (another size, another layout from an older build), so that the next load
// recreates them. Compatible pins are kept with their state.
func dropIncompatiblePins(spec *ebpf.CollectionSpec, dir string) error {
	for name, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinByName {
			continue
		}
		path := filepath.Join(dir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = ms.Compatible(m)
			m.Close()
			if err == nil {
				continue
			}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale pin %s: %w", name, err)
		}
	}
	return nil
}

// RemovePins removes everything pinned under dir (maps and links, which
// detaches links no process holds) and dir itself: `edgeloop guard reset`.
// An empty dir means the default pin path.
func RemovePins(dir string) error {
	if dir == "" {
		dir = defaultPinPath
	}
	if ok, err := isBPFFS(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	} else if !ok {
		return fmt.Errorf("%s is not on a bpffs", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove pin: %w", err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("remove pin path: %w", err)
	}
	return nil
}
