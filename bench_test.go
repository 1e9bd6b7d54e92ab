package entraauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// benchRequest is a signed-in request as the middleware receives it from
// Traefik: browser headers, the X-Forwarded-* headers Traefik's entry point
// adds, the session cookie and one cookie of the application.
type benchRequest struct {
	m      *Middleware
	req    *http.Request
	header http.Header // restored before every request: the middleware edits it
}

func newBenchRequest(b *testing.B) *benchRequest {
	b.Helper()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	h, err := New(context.Background(), next, validConfig(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	m := h.(*Middleware)
	s := &session.Session{
		OID:               "6c1e3d5a-7b8f-4a2e-9d1c-0b2a3c4d5e6f",
		TID:               testTenantID,
		Name:              "Alice Example",
		PreferredUsername: "alice@contoso.example",
		Email:             "alice@contoso.example",
		Groups:            []string{"a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"},
		Roles:             []string{"Reader"},
		IssuedAt:          time.Now().Unix(),
		Expires:           time.Now().Add(time.Hour).Unix(),
	}
	plain, err := s.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := m.sealer.Seal(plain, m.sessionAAD, time.Unix(s.Expires, 0))
	if err != nil {
		b.Fatal(err)
	}
	header := http.Header{
		"Accept":             {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding":    {"gzip, deflate, br"},
		"Accept-Language":    {"en-GB,en;q=0.9"},
		"User-Agent":         {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
		"Cookie":             {m.cookie.Name + "=" + sealed + "; theme=dark"},
		"X-Forwarded-For":    {"192.0.2.10"},
		"X-Forwarded-Host":   {"app.example.com"},
		"X-Forwarded-Port":   {"443"},
		"X-Forwarded-Proto":  {"https"},
		"X-Forwarded-Server": {"traefik-1"},
		"X-Real-Ip":          {"192.0.2.10"},
	}
	req := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports/2026", nil)
	return &benchRequest{m: m, req: req, header: header}
}

// BenchmarkSignedInRequest is the path almost every request takes, through
// ServeHTTP: strip spoofed identity headers, open the session, set the
// identity headers and remove the plugin's cookies. Run it under Yaegi too
// (make bench-go): that is how Traefik runs it, and there every statement
// and allocation counts.
func BenchmarkSignedInRequest(b *testing.B) {
	br := newBenchRequest(b)
	w := httptest.NewRecorder()
	// One request outside the loop checks that it passes (and warms the
	// session cache).
	br.req.Header = br.header.Clone()
	if !br.m.authorize(w, br.req) || br.req.Header.Get("X-Forwarded-User") == "" {
		b.Fatalf("the signed-in request did not pass: %d %s", w.Code, w.Body.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		br.req.Header = br.header.Clone()
		br.m.ServeHTTP(w, br.req)
	}
}

// BenchmarkPassCached is the same request served by the session cache's
// fast path (sessioncache.go) alone.
func BenchmarkPassCached(b *testing.B) {
	br := newBenchRequest(b)
	c := newCacheScope(br.m)
	br.req.Header = br.header.Clone()
	br.m.stripIdentityHeaders(br.req.Header)
	s := br.m.openSession(br.req)
	if s == nil {
		b.Fatal("the session does not open")
	}
	values := br.m.identityValues(s)
	br.m.setIdentityHeaders(br.req.Header, values)
	rememberSignedIn(br.m, c, br.req, s, values, br.m.renewAt(s))
	br.req.Header = br.header.Clone()
	if !passCached(br.m, c, br.req) {
		b.Fatal("the request missed the cache")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		br.req.Header = br.header.Clone()
		passCached(br.m, c, br.req)
	}
}

// BenchmarkHeaderClone is what the benchmarks above spend restoring the
// request headers, to subtract from them.
func BenchmarkHeaderClone(b *testing.B) {
	br := newBenchRequest(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		br.req.Header = br.header.Clone()
	}
}

// BenchmarkOpenSession is the session part alone (from the cache after the
// first request).
func BenchmarkOpenSession(b *testing.B) {
	br := newBenchRequest(b)
	br.req.Header = br.header.Clone()
	if br.m.openSession(br.req) == nil {
		b.Fatal("the session does not open")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		br.m.openSession(br.req)
	}
}
