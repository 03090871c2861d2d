package main

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCLIVersionAndHelp(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || strings.TrimSpace(out) != "edgeloop e2e-test" {
		t.Errorf("version: code %d out %q", code, out)
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"config", "--help"}, {"config", "check", "--help"}} {
		code, out, _ := runCLI(t, nil, args...)
		if code != 0 || !strings.Contains(out, "Usage") {
			t.Errorf("%v: code %d out %q", args, code, out)
		}
	}
	code, _, errOut := runCLI(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: code %d stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "serve", "--no-such-flag")
	if code != 2 || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("unknown flag: code %d stderr %q", code, errOut)
	}
}

func TestCLIConfigCheck(t *testing.T) {
	good := writeFile(t, "good.yaml", "listen: \":18200\"\nroutes:\n  - path: /\n    upstream: http://127.0.0.1:8080\n")
	code, out, errOut := runCLI(t, nil, "config", "check", good)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("good config: code %d out %q err %q", code, out, errOut)
	}
	cases := []struct{ name, src, want string }{
		{"unknown key", "listen: \":1\"\nlimits:\n  max_conns: 3\n", ":3: unknown key \"max_conns\""},
		{"bad duration", "timeouts:\n  read: soon\n", ":2: bad duration \"soon\""},
		{"bad size", "limits:\n  max_body_size: 10 parsecs\n", ":2: bad size"},
		{"no target", "routes:\n  - path: /a/\n", ":2: route \"/a/\" has no target"},
		{"bad url", "routes:\n  - path: /\n    upstream: \"http//oops\"\n", ":2: route \"/\": upstream \"http//oops\""},
	}
	for _, c := range cases {
		path := writeFile(t, "bad.yaml", c.src)
		code, _, errOut := runCLI(t, nil, "config", "check", path)
		want := path + c.want
		if code != 2 || !strings.HasPrefix(strings.TrimSpace(errOut), want) {
			t.Errorf("%s: code %d stderr %q, want exit 2 and %q", c.name, code, errOut, want)
		}
		// Serving a broken config fails the same way, without serving.
		code, _, errOut = runCLI(t, nil, "serve", "--config", path, "--listen", "127.0.0.1:0", "--admin", "off")
		if code != 2 || !strings.HasPrefix(strings.TrimSpace(errOut), want) {
			t.Errorf("%s: serve: code %d stderr %q", c.name, code, errOut)
		}
	}
	// EDGELOOP_UPSTREAM is validated like the file.
	code, _, errOut = runCLI(t, []string{"EDGELOOP_UPSTREAM=gopher://x"}, "config", "check", good)
	if code != 2 || !strings.Contains(errOut, "scheme must be http") {
		t.Errorf("bad EDGELOOP_UPSTREAM: code %d stderr %q", code, errOut)
	}
}

// TestExampleConfig keeps examples/edgeloop.yaml valid: it is the file the
// README documents key by key.
func TestExampleConfig(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	example := filepath.Join(filepath.Dir(file), "..", "..", "examples", "edgeloop.yaml")
	code, out, errOut := runCLI(t, nil, "config", "check", example)
	if code != 0 {
		t.Fatalf("config check examples/edgeloop.yaml: code %d\n%s%s", code, out, errOut)
	}
}
