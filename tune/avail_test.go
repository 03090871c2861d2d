package tune

import (
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func writeConfigGz(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(text))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestQdiscAvailability(t *testing.T) {
	f := func(config string, missing bool) {
		t.Helper()
		dir := t.TempDir()
		if config != "" {
			writeConfigGz(t, filepath.Join(dir, "config.gz"), config)
		}
		s := fakeRootIn(t, filepath.Join(dir, "sys"), hostLike, nil)
		ss, err := s.Show(ProfileBalanced)
		if err != nil {
			t.Fatal(err)
		}
		st := find(t, ss, "net.core.default_qdisc")
		if st.Missing != missing {
			t.Fatalf("config %q: %+v, want missing=%v", config, st, missing)
		}
		d, _ := s.Diff(ProfileBalanced)
		for _, x := range d {
			if x.Key == st.Key && missing {
				t.Errorf("Diff lists an unavailable qdisc")
			}
		}
	}
	f("CONFIG_NET_SCHED=y\n# CONFIG_NET_SCH_FQ is not set\nCONFIG_NET_SCH_FQ_CODEL=y\n", true)
	f("CONFIG_NET_SCH_FQ_CODEL=y\n", true)
	f("CONFIG_NET_SCH_FQ=m\n", false)
	f("CONFIG_NET_SCH_FQ=y\n", false)
	f("", false) // nothing tells: leave it to the write
}

func TestUnavailableWrite(t *testing.T) {
	// A kernel without the qdisc answers ENOENT to the write; the fake
	// root cannot, so the classification is checked directly.
	f := func(err error, value string, want bool) {
		t.Helper()
		if got := unavailableWrite(err, value); got != want {
			t.Errorf("unavailableWrite(%v, %q) = %v", err, value, got)
		}
	}
	f(os.ErrNotExist, "fq", true)
	f(os.ErrNotExist, "4096", false)
	f(os.ErrPermission, "fq", false)
	f(errors.New("invalid argument"), "fq", false)
}
