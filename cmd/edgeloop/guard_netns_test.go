//go:build linux

package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/bpf"
	"github.com/edgeloop/edgeloop/internal/netnstest"
)

// requireGuardBPF skips t when the kernel guard cannot run here (not root,
// no BPF, no ip or nsenter), or fails it when EDGELOOP_REQUIRE_BPF=1 (CI).
func requireGuardBPF(t *testing.T) {
	t.Helper()
	err := bpf.Supported()
	for _, tool := range []string{"ip", "nsenter"} {
		if err == nil {
			_, err = exec.LookPath(tool)
		}
	}
	if err == nil {
		return
	}
	if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
		t.Fatalf("kernel guard required (EDGELOOP_REQUIRE_BPF=1): %v", err)
	}
	t.Skipf("kernel guard unavailable: %v", err)
}

// guardCommand is an exec.Cmd running the edgeloop binary inside ns.
// nsenter switches only the network namespace, so the binary sees the
// host's cgroup2 and bpffs mounts (`ip netns exec` would remount /sys).
func guardCommand(ns *netnstest.NS, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + ns.Path(), binPath}, args...)...)
}

// cliIn runs an edgeloop CLI command inside ns and returns its exit code
// and output.
func guardCLIIn(t *testing.T, ns *netnstest.NS, args ...string) (int, string, string) {
	t.Helper()
	cmd := guardCommand(ns, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("edgeloop %v did not finish", args)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// httpGet sends one GET / on c and returns the status code.
func guardGet(c net.Conn, timeout time.Duration) (int, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: edgeloop\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}
