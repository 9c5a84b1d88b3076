package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

// The wall time of one `bcctl call` (a unary call resolved by reflection)
// beside grpcurl's on the same server in the same run; see
// docs/benchmarks.md, "bcctl call vs grpcurl".
//
//	go test -run '^$' -bench BenchmarkCallVsGrpcurl -count 6 ./cmd/bcctl
//
// grpcurl is looked up as $GRPCURL, then on $PATH, then in ~/go/bin; the
// comparison is skipped without it (bcctl's own figures are still given).

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// buildBcctl builds the bcctl binary once per test binary.
func buildBcctl(b *testing.B) string {
	b.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bcctl-bench")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "bcctl")
		out, err := exec.Command("go", "build", "-o", builtPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return builtPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func findGrpcurl() string {
	if p := os.Getenv("GRPCURL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "grpcurl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// runOnce runs a command and returns its wall time.
func runOnce(b *testing.B, name string, args ...string) time.Duration {
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
	return d
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func msPerOp(ds []time.Duration) float64 {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return float64(sum) / float64(len(ds)) / float64(time.Millisecond)
}

// BenchmarkCallVsGrpcurl alternates bcctl and grpcurl (which one goes
// first alternates too), so load on the machine falls on both alike.
// Metrics: mean wall time per call of each (ms), their medians, and
// bcctl/grpcurl, the ratio of the means.
func BenchmarkCallVsGrpcurl(b *testing.B) {
	bcctl := buildBcctl(b)
	grpcurl := findGrpcurl()
	srv, err := startTestServer(testServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	data := `{"id": "42"}`
	lanes := []struct {
		name    string
		bcctl   []string
		grpcurl []string
	}{
		// bcctl's default: multiplexed, so the backchannel is hosted.
		{"multiplexed", []string{"call", "--plaintext", srv.Addr, "acme.Users/Get", "-d", data},
			[]string{"-plaintext", "-d", data, srv.Addr, "acme.Users/Get"}},
		// Both as plain gRPC clients.
		{"no-mux", []string{"call", "--plaintext", "--no-mux", srv.Addr, "acme.Users/Get", "-d", data},
			[]string{"-plaintext", "-d", data, srv.Addr, "acme.Users/Get"}},
	}
	for _, lane := range lanes {
		b.Run(lane.name, func(b *testing.B) {
			// Warm the page cache and the server.
			runOnce(b, bcctl, lane.bcctl...)
			if grpcurl != "" {
				runOnce(b, grpcurl, lane.grpcurl...)
			}
			var tb, tg []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if grpcurl != "" && i%2 == 1 {
					tg = append(tg, runOnce(b, grpcurl, lane.grpcurl...))
				}
				tb = append(tb, runOnce(b, bcctl, lane.bcctl...))
				if grpcurl != "" && i%2 == 0 {
					tg = append(tg, runOnce(b, grpcurl, lane.grpcurl...))
				}
			}
			b.StopTimer()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(msPerOp(tb), "bcctl-ms")
			b.ReportMetric(float64(median(tb))/float64(time.Millisecond), "bcctl-p50-ms")
			if grpcurl == "" {
				b.Log("grpcurl not found (set $GRPCURL): bcctl's figures only")
				return
			}
			b.ReportMetric(msPerOp(tg), "grpcurl-ms")
			b.ReportMetric(float64(median(tg))/float64(time.Millisecond), "grpcurl-p50-ms")
			b.ReportMetric(msPerOp(tb)/msPerOp(tg), "bcctl/grpcurl")
		})
	}
}
