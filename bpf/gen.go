package bpf

// The programs are built from guard.c with clang; the output is committed so
// that a plain `go build` needs no clang. `make generate` runs this.
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -type source -type deny_entry -type lpm_key guard guard.c
