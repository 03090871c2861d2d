package tune

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// childPin pins the process and prints, for every thread, its tid and its
// Cpus_allowed_list as the kernel reports it in /proc/self/task/*/status.
func childPin(arg string) error {
	cpu, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	// Threads that exist before pinning, and threads made after it.
	var wg sync.WaitGroup
	release := make(chan struct{})
	lockThreads := func(n int) {
		for range n {
			wg.Add(1)
			go func() {
				runtime.LockOSThread() // forces a thread of its own
				wg.Done()
				<-release
			}()
		}
	}
	lockThreads(3)
	wg.Wait()
	if err := PinToCPU(cpu); err != nil {
		return err
	}
	lockThreads(3)
	wg.Wait()
	defer close(release)
	// Go 1.25+ re-derives the default GOMAXPROCS from the affinity mask
	// about once a second; wait for it, bounded.
	for i := 0; i < 40 && runtime.GOMAXPROCS(0) != 1; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("gomaxprocs %d\n", runtime.GOMAXPROCS(0))
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		return err
	}
	for _, st := range tasks {
		b, err := os.ReadFile(st)
		if err != nil {
			continue // thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				fmt.Printf("%s %s\n", filepath.Base(filepath.Dir(st)), strings.TrimSpace(v))
			}
		}
	}
	return nil
}

func TestPinToCPU(t *testing.T) {
	before, err := AllowedCPUs()
	if err != nil || len(before) == 0 {
		t.Fatalf("AllowedCPUs = %v, %v", before, err)
	}
	if before[0] < 0 || !slices.IsSorted(before) || len(before) > runtime.NumCPU() {
		t.Fatalf("AllowedCPUs = %v with %d CPUs", before, runtime.NumCPU())
	}
	for _, cpu := range before {
		out := runSelf(t, "", "pin:"+strconv.Itoa(cpu), nil)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		procs, _ := strings.CutPrefix(lines[0], "gomaxprocs ")
		lines = lines[1:]
		if os.Getenv("GOMAXPROCS") == "" && procs != "1" {
			t.Errorf("cpu %d: GOMAXPROCS stayed %s after pinning", cpu, procs)
		}
		if len(lines) < 7 { // main thread + 6 locked threads at least
			t.Fatalf("cpu %d: only %d threads reported:\n%s", cpu, len(lines), out)
		}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) != 2 || f[1] != strconv.Itoa(cpu) {
				t.Errorf("cpu %d: thread not pinned: %q", cpu, l)
			}
		}
	}
	for _, cpu := range []int{-1, maxCPU, maxCPU - 1} { // the last is valid in range but absent here
		if err := PinToCPU(cpu); !errors.Is(err, ErrBadCPU) {
			t.Errorf("PinToCPU(%d) = %v, want ErrBadCPU", cpu, err)
		}
	}
	if after, _ := AllowedCPUs(); !slices.Equal(before, after) {
		t.Fatalf("test process affinity changed: %v -> %v", before, after)
	}
}
