// Package stagetime times the stages of proxied requests for whoever works
// on edgeloop's latency. It is compiled in only with -tags stagetime:
// without the tag Enabled is a false constant, every call site sits behind
// it, and the compiler drops them.
//
// With the tag, client and upstream connections read with recvmsg(2) and
// SO_TIMESTAMPNS, so each read knows when the kernel received its data,
// and every EDGELOOP_STAGETIME_EVERY (default 5s) the process prints to
// standard error the percentiles of each stage since the last print:
//
//	go build -tags stagetime -o bin/edgeloop-stagetime ./cmd/edgeloop
//	GOMAXPROCS=1 taskset -c 0 bin/edgeloop-stagetime --upstream http://127.0.0.1:18180
//
// The stages are those of connections in arrival order (tune.wake_order),
// whose reads and writes go through internal/fairpoll; see docs/bench.md,
// "Upstream reads wait first too, and where a request's time goes".
package stagetime
