package tune

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRaiseNoFile(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore rlimit: %v", err)
		}
	})
	if orig.Max < 2048 {
		t.Skipf("hard RLIMIT_NOFILE %d too low to test", orig.Max)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 1024, Max: orig.Max}); err != nil {
		t.Fatal(err)
	}
	check := func(need, want uint64) {
		t.Helper()
		got, err := RaiseNoFile(need)
		soft, hard, _ := NoFile()
		if err != nil || got != want || soft != want || hard != orig.Max {
			t.Fatalf("RaiseNoFile(%d) = %d, %v; limits %d/%d; want %d", need, got, err, soft, hard, want)
		}
	}
	check(512, 1024)  // never lowers
	check(2048, 2048) // up within the hard limit
	check(orig.Max, orig.Max)

	// Above the hard limit: raised to the hard limit, and an error that
	// tells the operator the numbers (unless this process may raise it).
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 1024, Max: orig.Max}); err != nil {
		t.Fatal(err)
	}
	need := orig.Max + 1
	got, err := RaiseNoFile(need)
	if err == nil {
		if got != need {
			t.Fatalf("RaiseNoFile(%d) = %d without error", need, got)
		}
		t.Logf("hard limit raised to %d (CAP_SYS_RESOURCE)", need)
		return
	}
	if !errors.Is(err, ErrNoFileLimit) || got != orig.Max {
		t.Fatalf("RaiseNoFile(%d) = %d, %v; want %d and ErrNoFileLimit", need, got, err, orig.Max)
	}
	for _, w := range []string{strconv.FormatUint(need, 10), strconv.FormatUint(orig.Max, 10), "LimitNOFILE", "CAP_SYS_RESOURCE"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	t.Logf("as expected here: %v", err)
}
