package tune

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
)

// defaultPersistPath sorts late among /etc/sysctl.d files so its values win
// over distribution defaults at boot (systemd-sysctl applies files in
// lexical order, later assignments override earlier ones).
const defaultPersistPath = "/etc/sysctl.d/90-edgeloop.conf"

// Persist writes the profile as a sysctl.d(5) file at path (if empty,
// /etc/sysctl.d/90-edgeloop.conf): a header comment, then for each key its
// reason as a comment and a "key = value" line. The value is what Apply would
// leave on this host, so a host tuned beyond the profile keeps its values at
// boot. Keys missing on this host are written as comments only. The file is
// replaced atomically (temporary file and rename). It does not change the
// running kernel; run Apply or `sysctl --system` for that.
func (s Sysctl) Persist(p Profile, path string) error {
	if path == "" {
		path = defaultPersistPath
	}
	p, err := ParseProfile(string(p))
	if err != nil {
		return err
	}
	settings, showErr := s.Show(p)
	if errors.Is(showErr, ErrMalformed) {
		// A malformed current value cannot be merged; the recommendation
		// is written for that key, as sysctl(8) would store it.
		showErr = nil
	}
	if showErr != nil {
		return fmt.Errorf("persist: %w", showErr)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# edgeloop sysctl profile %q, written by `edgeloop tune persist`.\n", p)
	fmt.Fprintf(&b, "# Values never lower what this host had when the file was written.\n")
	fmt.Fprintf(&b, "# Load now with `sysctl --system`; delete this file to stop applying it at boot.\n")
	for _, st := range settings {
		b.WriteString("\n")
		if st.Missing {
			fmt.Fprintf(&b, "# %s: %s\n", st.Key, st.Note)
			continue
		}
		v := st.Recommended
		if st.Note == "" {
			v = lookup(st.Key).kind.merge(st.Current, st.Recommended)
		}
		fmt.Fprintf(&b, "# %s\n%s = %s\n", st.Why, st.Key, v)
	}
	return writeAtomic(path, b.Bytes())
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".edgeloop-sysctl-*")
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%w: persist to %s: %v", ErrNotRoot, path, err)
		}
		return fmt.Errorf("persist: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("persist: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("persist: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("persist: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	return nil
}

// Status is the one-word state FormatTable prints for a setting.
func (st Setting) Status() string {
	switch {
	case st.Missing:
		return "missing"
	case st.Note != "":
		return "error"
	case st.OK:
		return "ok"
	}
	return "DIFF"
}

// FormatTable writes settings as aligned columns (key, current, recommended,
// status, why) for `edgeloop tune show` and `edgeloop tune diff`. Notes of
// missing or malformed keys replace the why column.
func FormatTable(w io.Writer, settings []Setting) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tCURRENT\tRECOMMENDED\tSTATUS\tWHY")
	for _, st := range settings {
		cur, why := st.Current, st.Why
		if cur == "" {
			cur = "-"
		}
		if st.Note != "" {
			why = st.Note
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Key, cur, st.Recommended, st.Status(), why)
	}
	return tw.Flush()
}
