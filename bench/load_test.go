package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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

func TestTheUpstreamTellsWhatAConfigurationMustNotLetThrough(t *testing.T) {
	signedIn := expectation{identity: map[string]string{"X-Forwarded-User": "oid-1", "X-Forwarded-Email": "a@example.com"}, cookie: "theme=dark", checkCookie: true}
	tests := []struct {
		name    string
		want    expectation
		path    string
		headers map[string][]string
		ok      bool
	}{
		{"the identity and the site's cookies", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-1"}, "X-Forwarded-Email": {"a@example.com"}, "Cookie": {"theme=dark"}}, true},
		{"another user's identity", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-2"}, "X-Forwarded-Email": {"a@example.com"}, "Cookie": {"theme=dark"}}, false},
		{"no identity", signedIn, "/", map[string][]string{"Cookie": {"theme=dark"}}, false},
		{"one identity header missing", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-1"}, "Cookie": {"theme=dark"}}, false},
		{"the identity twice", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-1", "oid-1"}, "X-Forwarded-Email": {"a@example.com"}, "Cookie": {"theme=dark"}}, false},
		{"a spoofed spelling with underscores", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-1"}, "X-Forwarded-Email": {"a@example.com"}, "X_forwarded_user": {"mallory"}, "Cookie": {"theme=dark"}}, false},
		{"another identity header", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-1"}, "X-Forwarded-Email": {"a@example.com"}, "X-Forwarded-Roles": {"Admin"}, "Cookie": {"theme=dark"}}, false},
		{"the plugin's cookie", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-1"}, "X-Forwarded-Email": {"a@example.com"}, "Cookie": {"__Host-entraauth_main=sealed; theme=dark"}}, false},
		{"no Cookie header where one is due", signedIn, "/", map[string][]string{"X-Forwarded-User": {"oid-1"}, "X-Forwarded-Email": {"a@example.com"}}, false},
		{"a path a rule refuses", signedIn, refusedPrefix + "x", map[string][]string{"X-Forwarded-User": {"oid-1"}, "X-Forwarded-Email": {"a@example.com"}, "Cookie": {"theme=dark"}}, false},
		{"any value where any will do", expectation{identity: map[string]string{"X-Forwarded-User": ""}}, "/", map[string][]string{"X-Forwarded-User": {"oid-9"}}, true},
		{"an empty value where any will do", expectation{identity: map[string]string{"X-Forwarded-User": ""}}, "/", map[string][]string{"X-Forwarded-User": {""}}, false},
		{"Traefik alone: an identity header", expectation{cookie: "a=1", checkCookie: true}, "/", map[string][]string{"X-Forwarded-User": {"x"}, "Cookie": {"a=1"}}, false},
		{"Traefik alone: no Cookie header expected, none", expectation{checkCookie: true}, "/", map[string][]string{}, true},
		{"Traefik alone: no Cookie header expected, one", expectation{checkCookie: true}, "/", map[string][]string{"Cookie": {"a=1"}}, false},
		{"the do-nothing plugin's header", expectation{noop: true}, "/", map[string][]string{"X-Noop": {"1"}}, true},
		{"no do-nothing plugin's header", expectation{noop: true}, "/", map[string][]string{}, false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "https://app.example"+tt.path, nil)
			r.Header = tt.headers
			bad := tt.want.check(r)
			if (bad == "") != tt.ok {
				t.Errorf("check = %q, want ok %v", bad, tt.ok)
			}
		})
	}
}

func TestIdentityHeaderSpellings(t *testing.T) {
	for _, k := range []string{"X-Forwarded-User", "x-forwarded-user", "X_Forwarded_User", "X_forwarded-USER", "X-Auth-Request-Email", "x_auth_request_preferred_username"} {
		if identityHeader(k) == "" {
			t.Errorf("%s is not recognised as an identity header", k)
		}
	}
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Users", "Cookie", "X-Real-Ip"} {
		if got := identityHeader(k); got != "" {
			t.Errorf("%s taken for %s", k, got)
		}
	}
}

func TestParseH2load(t *testing.T) {
	out := `starting benchmark...
TLS Protocol: TLSv1.3
Application protocol: h2
finished in 10.01s, 5247.00 req/s, 179.48KB/s
requests: 52520 total, 52536 started, 52520 done, 52510 succeeded, 4 failed, 3 errored, 2 timeout
status codes: 52510 2xx, 1 3xx, 5 4xx, 2 5xx
traffic: 358.96KB (367571) total, 41.15KB (42135) headers (space savings 95.82%), 133.22KB (136422) data
`
	r, err := parseH2load(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 52510 || r.rps != 5247 || r.seconds != 10.01 || r.socketErrors != 9 || r.non2xx3xx != 7 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseH2load(strings.Replace(out, "Application protocol: h2", "Application protocol: http/1.1", 1)); err == nil {
		t.Error("parsed a run over HTTP/1.1 as HTTP/2")
	}
	if _, err := parseH2load("starting benchmark...\nApplication protocol: h2\nNo protocol negotiated. Aborted\n"); err == nil {
		t.Error("parsed a failed run")
	}
}

func TestReadH2loadLog(t *testing.T) {
	name := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(name, []byte("1796207166980891\t200\t2573\n1796207166980892\t200\t900\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ls, err := readH2loadLog(name)
	if err != nil || len(ls) != 2 || ls[0] != 2573*time.Microsecond || ls[1] != 900*time.Microsecond {
		t.Errorf("read %v, %v", ls, err)
	}
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readH2loadLog(name); err == nil {
		t.Error("an empty log read as a run")
	}
}
