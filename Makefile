# edgeloop — the two commands a newcomer needs are `make run` and `make test`.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/edgeloop
GO      ?= go

.PHONY: all build run test bench generate lint clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/edgeloop

# Serves the built-in default site on :18100 (admin on 127.0.0.1:18101).
run: build
	./$(BIN) serve $(ARGS)

# Installs missing test dependencies, starts a throwaway PostgreSQL, runs every test.
test:
	scripts/test.sh

# Go benchmarks plus wrk against edgeloop and its peers (nginx), same run.
bench: build
	bench/run.sh

# Regenerates the committed BPF objects (needs clang and libbpf-dev).
generate:
	$(GO) generate ./bpf/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfel.go$$')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin bench/out
