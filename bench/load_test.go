package main

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:41234/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.63ms    1.52ms  41.20ms   93.52%
    Req/Sec     6.18k   512.33     6.90k    78.00%
  Latency Distribution
     50%    2.38ms
     75%    2.75ms
     90%    3.28ms
     99%    9.76ms
  61543 requests in 10.01s, 8.57MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   6148.15
Transfer/sec:    876.70KB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 61543 || r.p50 != 2380*time.Microsecond || r.p99 != 9760*time.Microsecond ||
		r.socketErrors != 3 || r.non2xx3xx != 4 || r.seconds < 10.0 || r.seconds > 10.02 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseWrk("Running 10s test\nunable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parsed a failed run")
	}
}

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"635.91us", 635910 * time.Nanosecond},
		{"1.20ms", 1200 * time.Microsecond},
		{"10.00s", 10 * time.Second},
		{"1.50m", 90 * time.Second},
	}
	for _, tt := range tests {
		got, err := parseWrkDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseWrkDuration("12"); err == nil {
		t.Error("a duration without unit was accepted")
	}
}
