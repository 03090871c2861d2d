package tune

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxCPU is the number of CPUs a unix.CPUSet holds (the kernel's default
// CPU_SETSIZE of 1024).
const maxCPU = len(unix.CPUSet{}) * 64

// pinPasses bounds how many times PinToCPU re-reads the thread list.
const pinPasses = 10

// PinToCPU restricts every thread of the process to one CPU.
//
// sched_setaffinity(2) acts on one thread, and a Go process has many (one
// per M), so PinToCPU sets the mask on each task listed in /proc/self/task.
// New threads inherit the mask of the thread that clones them; a thread
// cloned by a not-yet-pinned thread while the first pass runs is caught by
// the next one: the list is re-read until a pass finds no new thread
// (bounded to pinPasses). Once it returns, every thread is pinned and every
// later thread inherits the pin.
//
// Go 1.25+ derives the default GOMAXPROCS from the affinity mask and updates
// it while running, so after pinning GOMAXPROCS drops to 1 unless it was set
// explicitly (within about a second: sysmon re-reads the mask). Pinning is
// meant for one worker process per CPU.
//
// A CPU outside the process's cgroup cpuset makes the kernel answer EINVAL,
// returned as ErrBadCPU before any thread has moved.
func PinToCPU(cpu int) error {
	if cpu < 0 || cpu >= maxCPU {
		return fmt.Errorf("%w: cpu %d outside 0..%d", ErrBadCPU, cpu, maxCPU-1)
	}
	var set unix.CPUSet
	set.Set(cpu)
	done := map[int]bool{}
	for range pinPasses {
		tids, err := threads()
		if err != nil {
			return err
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh++
			err := unix.SchedSetaffinity(tid, &set)
			switch {
			case errors.Is(err, unix.ESRCH): // the thread exited meanwhile
			case errors.Is(err, unix.EINVAL):
				allowed, _ := AllowedCPUs()
				return fmt.Errorf("%w: cpu %d is not in the set this process may use %v", ErrBadCPU, cpu, allowed)
			case err != nil:
				return fmt.Errorf("sched_setaffinity thread %d: %w", tid, err)
			}
			done[tid] = true
		}
		if fresh == 0 {
			return nil
		}
	}
	return fmt.Errorf("pin to cpu %d: threads kept appearing after %d passes", cpu, pinPasses)
}

// threads lists the thread ids of this process.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// AllowedCPUs returns the CPUs the calling thread may run on, ascending:
// the cgroup cpuset narrowed by any affinity mask (after PinToCPU, the same
// for every thread).
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	cpus := make([]int, 0, set.Count())
	for cpu := range maxCPU {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}
