package tune

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// childEnv makes the test binary run one child routine instead of the tests,
// so that process-wide changes (CPU affinity, dropped privileges) never touch
// the test process itself.
const childEnv = "EDGELOOP_TUNE_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(mode string) error {
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "pin":
		return childPin(arg)
	case "notroot":
		return childNotRoot(arg)
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// runSelf re-executes the test binary in child mode and returns its stdout.
// bin overrides the binary path (to run a copy other users may execute).
func runSelf(t *testing.T, bin, mode string, configure func(*exec.Cmd)) string {
	t.Helper()
	if bin == "" {
		bin = os.Args[0]
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if configure != nil {
		configure(cmd)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, stderr.String())
	}
	return string(out)
}

// publicCopy copies the test binary into a directory every user can read, so
// a child can run with dropped privileges.
func publicCopy(t *testing.T) (bin, dir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "edgeloop-tune-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "tune.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}
