package tune

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// defaultSysctlRoot is where the kernel exposes sysctls.
const defaultSysctlRoot = "/proc/sys"

// Sysctl reads and writes the profile's keys under Root. The zero value uses
// /proc/sys. Methods hold no state and are safe for concurrent use, though
// two concurrent Apply calls race on the host like any two sysctl(8) runs.
//
// Note that most net.* keys are per network namespace: Sysctl acts on the
// namespace of the calling thread.
type Sysctl struct {
	// Root is the directory that mirrors /proc/sys. If empty, /proc/sys is
	// used; tests point it at a temporary directory.
	Root string
}

// Setting is one key of a profile as found on the host.
type Setting struct {
	Key         string
	Current     string // normalized: fields separated by one space; "" if Missing
	Recommended string
	Why         string
	OK          bool   // Current meets Recommended under the key's comparison
	Missing     bool   // key absent on this host, or the recommended choice unavailable
	Note        string // why the key is Missing or could not be compared
}

// Change is one write made by Apply, enough to undo it with Restore.
type Change struct {
	Key  string
	Path string // the file written
	Old  string // value before the write
	New  string // value read back after the write
}

func (s Sysctl) root() string {
	if s.Root == "" {
		return defaultSysctlRoot
	}
	return s.Root
}

func (s Sysctl) path(key string) string {
	return filepath.Join(s.root(), strings.ReplaceAll(key, ".", "/"))
}

// Read returns the normalized value of one sysctl key, such as
// "net.core.somaxconn". A key that does not exist wraps ErrMissing.
func (s Sysctl) Read(key string) (string, error) {
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s", ErrMissing, key)
	}
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return normalize(string(b)), nil
}

// Show compares every key the profile manages with the host. It returns all
// settings, including missing and malformed ones; the error joins the
// problems met (each wraps ErrMalformed or a read error) and is nil when
// every present key could be compared.
func (s Sysctl) Show(p Profile) ([]Setting, error) {
	p, err := ParseProfile(string(p))
	if err != nil {
		return nil, err
	}
	var out []Setting
	var errs []error
	for _, k := range table {
		rec := k.value(p)
		if rec == "" {
			continue
		}
		st := Setting{Key: k.name, Recommended: rec, Why: k.why}
		cur, err := s.Read(k.name)
		switch {
		case errors.Is(err, ErrMissing):
			st.Missing, st.Note = true, "not present on this host, skipped"
		case err != nil:
			st.Note = err.Error()
			errs = append(errs, err)
		default:
			st.Current = cur
			st.OK, err = k.kind.check(cur, rec)
			if err != nil {
				st.Note = err.Error()
				errs = append(errs, fmt.Errorf("%s: %w", k.name, err))
			}
		}
		if avail := availability[k.name]; avail != nil && !st.Missing && !st.OK {
			if ok, note := avail(s, rec); !ok {
				st.Missing, st.Note = true, note
			}
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

// Diff returns the settings Apply would change: present, comparable and not
// meeting the profile. Missing keys are listed by Show, not here.
func (s Sysctl) Diff(p Profile) ([]Setting, error) {
	all, err := s.Show(p)
	var out []Setting
	for _, st := range all {
		if !st.OK && !st.Missing && st.Note == "" {
			out = append(out, st)
		}
	}
	return out, err
}

// Apply writes the profile's values for every key in Diff. It never makes a
// value worse: a limit already above the recommendation is not lowered, a
// timeout already below is not raised, set bits stay set (see kind.merge).
// Missing and malformed keys are skipped and reported in the error.
//
// Against /proc/sys it refuses to start unless the effective user is root,
// and any EACCES/EPERM from a write stops it with ErrNotRoot. The changes
// made before an error are returned so the caller can Restore them.
func (s Sysctl) Apply(p Profile) ([]Change, error) {
	if filepath.Clean(s.root()) == defaultSysctlRoot && os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: apply sysctl profile (euid %d)", ErrNotRoot, os.Geteuid())
	}
	diff, err := s.Diff(p)
	if errors.Is(err, ErrUnknownProfile) {
		return nil, err
	}
	errs := []error{err}
	var changes []Change
	for _, st := range diff {
		k := lookup(st.Key)
		target := k.kind.merge(st.Current, st.Recommended)
		path := s.path(st.Key)
		if err := writeSysctl(path, target); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return changes, fmt.Errorf("%w: write %s: %v", ErrNotRoot, st.Key, err)
			}
			if unavailableWrite(err, target) {
				err = fmt.Errorf("%w: %s = %s is not available in this kernel", ErrMissing, st.Key, target)
			}
			errs = append(errs, fmt.Errorf("write %s = %q: %w", st.Key, target, err))
			continue
		}
		now, err := s.Read(st.Key)
		if err != nil {
			now = target
		}
		changes = append(changes, Change{Key: st.Key, Path: path, Old: st.Current, New: now})
		applied.WithLabelValues(st.Key).Inc()
	}
	return changes, errors.Join(errs...)
}

// Restore undoes changes in reverse order, writing each Old value back. It
// attempts every change and joins the errors.
func Restore(changes []Change) error {
	var errs []error
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if err := writeSysctl(c.Path, c.Old); err != nil {
			errs = append(errs, fmt.Errorf("restore %s = %q: %w", c.Key, c.Old, err))
		}
	}
	return errors.Join(errs...)
}

// writeSysctl writes v to an existing sysctl file. It never creates files:
// a key that vanished is an error, not a new file in a fake root.
func writeSysctl(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	// The kernel parses the whole value from one write(2).
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func lookup(name string) key {
	for _, k := range table {
		if k.name == name {
			return k
		}
	}
	return key{name: name, kind: exact}
}
