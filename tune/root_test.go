package tune

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// requireRoot skips a test that needs root, or fails it when the CI says the
// privileged tests must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
		t.Fatal("needs root (EDGELOOP_REQUIRE_BPF=1)")
	}
	t.Skip("needs root to write /proc/sys")
}

// TestApplyReal applies a profile to this host's /proc/sys and restores
// every value it changed.
func TestApplyReal(t *testing.T) {
	requireRoot(t)
	s := Sysctl{}
	before, err := s.Show(ProfileBalanced)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := s.Apply(ProfileBalanced)
	restored := false
	t.Cleanup(func() {
		if !restored {
			if err := Restore(changes); err != nil {
				t.Errorf("cleanup restore: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatalf("Apply: %v (changes %v)", err, changes)
	}
	after, err := s.Show(ProfileBalanced)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range after {
		if !st.OK && !st.Missing {
			t.Errorf("after Apply %s = %q, recommended %q", st.Key, st.Current, st.Recommended)
		}
		if st.Missing {
			t.Logf("skipped on this host: %s (%s)", st.Key, st.Note)
		}
	}
	t.Logf("applied %d changes", len(changes))
	for _, c := range changes {
		t.Logf("  %s: %s -> %s", c.Key, c.Old, c.New)
	}
	restored = true
	if err := Restore(changes); err != nil {
		t.Fatal(err)
	}
	for _, st := range before {
		if st.Missing {
			continue
		}
		if got, err := s.Read(st.Key); err != nil || got != st.Current {
			t.Errorf("after Restore %s = %q, %v; was %q", st.Key, got, err, st.Current)
		}
	}
}

// childNotRoot runs as an unprivileged user and prints the error kind of
// each privileged operation.
func childNotRoot(arg string) error {
	fake, dir, ok := strings.Cut(arg, ",")
	if !ok {
		return fmt.Errorf("bad arg %q", arg)
	}
	kind := func(err error) string {
		switch {
		case errors.Is(err, ErrNotRoot):
			return "ErrNotRoot"
		case err == nil:
			return "nil"
		}
		return "other: " + err.Error()
	}
	_, err := Sysctl{}.Apply(ProfileBalanced)
	fmt.Println("proc", kind(err))
	changes, err := Sysctl{Root: fake}.Apply(ProfileBalanced)
	fmt.Println("fake", kind(err), len(changes))
	fmt.Println("persist", kind(Sysctl{Root: fake}.Persist(ProfileBalanced, filepath.Join(dir, "90-edgeloop.conf"))))
	fmt.Println("euid", os.Geteuid())
	return nil
}

// TestApplyNotRoot drops to user nobody in a child and checks that every
// write is refused with ErrNotRoot: by the euid check against /proc/sys, and
// by the kernel's EACCES against files the user may not write.
func TestApplyNotRoot(t *testing.T) {
	requireRoot(t)
	bin, dir := publicCopy(t)
	fake := filepath.Join(dir, "sys")
	fakeRootIn(t, fake, hostLike, nil)
	out := runSelf(t, bin, "notroot:"+fake+","+dir, func(c *exec.Cmd) {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	})
	want := "proc ErrNotRoot\nfake ErrNotRoot 0\npersist ErrNotRoot\neuid 65534\n"
	if out != want {
		t.Fatalf("unprivileged child printed\n%s\nwant\n%s", out, want)
	}
	if got, _ := (Sysctl{Root: fake}).Read("net.core.somaxconn"); got != "4096" {
		t.Errorf("fake somaxconn changed to %q", got)
	}
}
