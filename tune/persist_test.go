package tune

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPersist(t *testing.T) {
	s := fakeRoot(t, hostLike, map[string]string{"net.core.rmem_max": "67108864"})
	path := filepath.Join(t.TempDir(), "90-edgeloop.conf")
	if err := s.Persist(ProfileLatency, path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# edgeloop sysctl profile \"latency\"") {
		t.Errorf("header missing:\n%s", data)
	}
	persisted := map[string]string{}
	comments := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			comments++
		default:
			k, v, ok := strings.Cut(line, " = ")
			if !ok {
				t.Fatalf("line %q is not key = value", line)
			}
			persisted[k] = v
		}
	}
	if strings.Contains(string(data), "\nnet.netfilter.nf_conntrack_max") ||
		!strings.Contains(string(data), "# net.netfilter.nf_conntrack_max: not present") {
		t.Errorf("missing key not written as a comment:\n%s", data)
	}
	ss, _ := s.Show(ProfileLatency)
	if len(persisted) != len(ss)-1 || comments < len(ss)+3 {
		t.Errorf("persisted %d keys and %d comments for %d settings", len(persisted), comments, len(ss))
	}
	// The file must hold exactly what Apply leaves on the host.
	if _, err := s.Apply(ProfileLatency); err != nil {
		t.Fatal(err)
	}
	for k, v := range persisted {
		if got, _ := s.Read(k); got != v {
			t.Errorf("persisted %s = %s, Apply left %s", k, v, got)
		}
	}
	if persisted["net.core.rmem_max"] != "67108864" {
		t.Errorf("Persist lowered rmem_max to %s", persisted["net.core.rmem_max"])
	}
	if err := s.Persist("x", path); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("Persist(x) err = %v", err)
	}
	if err := s.Persist("", filepath.Join(t.TempDir(), "no", "such", "dir.conf")); err == nil {
		t.Error("Persist into a missing directory succeeded")
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".edgeloop-sysctl-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestFormatTable(t *testing.T) {
	s := fakeRoot(t, hostLike, map[string]string{"net.core.somaxconn": "x"})
	ss, _ := s.Show(ProfileBalanced)
	var b bytes.Buffer
	if err := FormatTable(&b, ss); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != len(ss)+1 {
		t.Fatalf("%d lines for %d settings", len(lines), len(ss))
	}
	col := strings.Index(lines[0], "RECOMMENDED")
	status := strings.Index(lines[0], "STATUS")
	for i, st := range ss {
		line := lines[i+1]
		if !strings.HasPrefix(line[col:], st.Recommended+" ") {
			t.Errorf("recommended not aligned in %q", line)
		}
		if got := strings.Fields(line[status:])[0]; got != st.Status() {
			t.Errorf("status %q, want %q in %q", got, st.Status(), line)
		}
	}
	out := b.String()
	for _, w := range []string{"net.ipv4.tcp_wmem  ", " DIFF ", " ok ", " missing ", " error ", "4096 16384 4194304"} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}
}
