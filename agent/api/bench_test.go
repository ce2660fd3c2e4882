package api

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkStatus measures GET /v1/status over loopback with mutual TLS
// and a keep-alive client (the handshake happens once, before the timer).
// It reports the p50 and p99 of the calls; run 1,000 of them with
//
//	go test -run '^$' -bench BenchmarkStatus -benchtime 1000x ./agent/api
func BenchmarkStatus(b *testing.B) {
	e := start(b)
	ctx := context.Background()
	if _, err := e.client.Status(ctx); err != nil {
		b.Fatal(err)
	}
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := e.client.Status(ctx); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}
