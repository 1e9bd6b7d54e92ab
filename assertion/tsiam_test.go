package assertion_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

func newTsiam(t *testing.T, srv *assertiontest.Server, authority string) assertion.Source {
	t.Helper()
	src, err := assertion.Parse("tsiam="+srv.URL+"/", authority, nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestTsiamSendsTheExactRequest(t *testing.T) {
	tests := []struct {
		name      string
		authority string
		resource  string
	}{
		{"public cloud", "", "api://AzureADTokenExchange"},
		{"US Government cloud", "https://login.microsoftonline.us", "api://AzureADTokenExchangeUSGov"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := assertiontest.NewTsiam()
			defer srv.Close()
			tok, err := newTsiam(t, srv, tt.authority).Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Until(tok.Expires); d < 290*time.Second || d > 300*time.Second {
				t.Errorf("expires in %v, want tsiam's 300 s", d)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/token" || !reflect.DeepEqual(r.Query, url.Values{"resource": {tt.resource}}) {
				t.Errorf("%s %s %v, want POST /token resource=%s", r.Method, r.Path, r.Query, tt.resource)
			}
			if r.Header.Get("X-Tsiam") != "1" || r.Body != "" {
				t.Errorf("X-Tsiam %q, body %q; want 1 and no body", r.Header.Get("X-Tsiam"), r.Body)
			}
			for name := range r.Header {
				if name == "Origin" || strings.HasPrefix(name, "Sec-Fetch-") {
					t.Errorf("sent browser header %s", name)
				}
			}
		})
	}
}

func TestTsiamReadsExpiryAsStringOrNumber(t *testing.T) {
	expires := time.Unix(time.Now().Add(7*time.Minute).Unix(), 0)
	for _, numeric := range []bool{false, true} {
		srv := assertiontest.NewTsiam()
		srv.SetNumericExpiry(numeric)
		srv.Mint = func(node string) (string, time.Time) { return "token-of-" + node, expires }
		tok, err := newTsiam(t, srv, "").Fetch(context.Background())
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value != "token-of-"+srv.SystemClientID || !tok.Expires.Equal(expires) {
			t.Errorf("numeric=%v: %q expiring %v, want token-of-%s expiring %v", numeric, tok.Value, tok.Expires, srv.SystemClientID, expires)
		}
	}
}

func TestTsiamRefusals(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(srv *assertiontest.Server)
		status    int
		want      []string
		temporary bool
	}{
		{name: "an audience tsiam does not allow", setup: func(srv *assertiontest.Server) { srv.AllowAudiences("https://api.example.com") },
			status: 403, want: []string{"assertion: tsiam: HTTP 403 audience_not_allowed: Audience is not allowed", "allowedAudiences"}},
		{name: "a 400", setup: func(srv *assertiontest.Server) { srv.FailNext(400) },
			status: 400, want: []string{"HTTP 400 bad_request", "check the tsiam endpoint"}},
		{name: "a 500", setup: func(srv *assertiontest.Server) { srv.FailNext(500) },
			status: 500, want: []string{"HTTP 500 internal", "see its logs"}, temporary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := assertiontest.NewTsiam()
			defer srv.Close()
			tt.setup(srv)
			_, err := newTsiam(t, srv, "").Fetch(context.Background())
			e, ok := assertion.AsError(err)
			if !ok || e.StatusCode != tt.status || e.Temporary() != tt.temporary {
				t.Fatalf("Fetch = %v, want an *assertion.Error with status %d", err, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if srv.Hits() != 1 {
				t.Errorf("%d requests, want 1 (no retries)", srv.Hits())
			}
		})
	}
}

func TestTsiamUnreachable(t *testing.T) {
	srv := assertiontest.NewTsiam()
	src := newTsiam(t, srv, "")
	srv.Close()
	_, err := src.Fetch(context.Background())
	if !errors.Is(err, assertion.ErrUnavailable) || !strings.Contains(err.Error(), "is this machine on the tailnet") {
		t.Errorf("Fetch = %v", err)
	}
}

func TestTsiamShortTokensAreRefreshedAMinuteBeforeExpiry(t *testing.T) {
	srv := assertiontest.NewTsiam()
	defer srv.Close()
	clk := newClock()
	srv.Mint = func(node string) (string, time.Time) { return "t", clk.Now().Add(5 * time.Minute) }
	c := assertion.NewCache(newTsiam(t, srv, ""))
	c.Now = clk.Now
	ctx := context.Background()
	c.Assertion(ctx)
	clk.Add(3*time.Minute + 59*time.Second)
	c.Assertion(ctx)
	if srv.Hits() != 1 {
		t.Errorf("%d requests before the refresh point, want 1", srv.Hits())
	}
	clk.Add(time.Second)
	c.Assertion(ctx)
	if srv.Hits() != 2 {
		t.Errorf("%d requests at the refresh point, want 2", srv.Hits())
	}
}
