package compress

import "github.com/prometheus/client_golang/prometheus"

// Package-level collectors, registered on prometheus.DefaultRegisterer (the
// admin listener serves the default gatherer). Label values are bound once
// here so the request path does not look them up.
var (
	responsesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop",
		Subsystem: "compress",
		Name:      "responses_total",
		Help: "Compressible responses by the content coding they were sent with " +
			"(identity: the client accepted none of ours, or the coded body was not smaller).",
	}, []string{"encoding"})
	bytesInTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop",
		Subsystem: "compress",
		Name:      "bytes_in_total",
		Help:      "Body bytes fed to the encoder, by content coding.",
	}, []string{"encoding"})
	bytesOutTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop",
		Subsystem: "compress",
		Name:      "bytes_out_total",
		Help:      "Coded body bytes produced, by content coding.",
	}, []string{"encoding"})

	encMetrics [numEncodings]struct {
		responses, in, out prometheus.Counter
	}
)

func init() {
	prometheus.MustRegister(responsesTotal, bytesInTotal, bytesOutTotal)
	for e := range numEncodings {
		name := e.String()
		encMetrics[e].responses = responsesTotal.WithLabelValues(name)
		encMetrics[e].in = bytesInTotal.WithLabelValues(name)
		encMetrics[e].out = bytesOutTotal.WithLabelValues(name)
	}
}

// countCompressed records one coded response body.
func countCompressed(enc Encoding, in, out int) {
	m := &encMetrics[enc]
	m.responses.Inc()
	m.in.Add(float64(in))
	m.out.Add(float64(out))
}

// countHead records a HEAD response labelled with a coding but carrying no
// body.
func countHead(enc Encoding) {
	encMetrics[enc].responses.Inc()
}

// countIdentity records a compressible response sent uncoded because the
// client accepted none of the server's codings.
func countIdentity() {
	encMetrics[Identity].responses.Inc()
}

// countIncompressible records a body whose coded form was not smaller, sent
// as it was.
func countIncompressible() {
	encMetrics[Identity].responses.Inc()
}
