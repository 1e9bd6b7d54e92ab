package entraauth

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// The identity provider fails: slow, down, answering garbage, throttling.
// The plugin must answer every request within bounds with a clear page,
// recover by itself, keep signed-in users working, and never panic.

// faultTimeout replaces the 10 s timeouts of the Entra ID client and the
// assertion sources in the tests of slow services; a slow answer is slower
// than this by far. Other tests keep the defaults: under Yaegi on a busy
// machine, a healthy answer may take a good part of a second.
const (
	faultTimeout = time.Second
	slowAnswer   = 5 * time.Second
	// answerBound is how long a request may take when a service hangs: the
	// timeout plus generous scheduling slack, well under slowAnswer.
	answerBound = 3 * time.Second
)

// faultClock is a settable clock shared with the goroutines serving
// requests.
type faultClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFaultClock() *faultClock { return &faultClock{now: time.Now()} }

func (c *faultClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *faultClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// lockedBuffer collects the middleware's log, written by the goroutines
// serving requests.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// panickingCredential is a client credential that blows up, standing for
// any bug deep in the plugin.
type panickingCredential struct{}

func (p *panickingCredential) SetClientAuth(ctx context.Context, form url.Values) error {
	panic("credential exploded")
}

// faultStack is a stack whose middleware has an Entra ID client of its
// own: the timeout when not zero, the clock clk, and credential when not
// nil. Its log goes to the returned buffer.
func faultStack(t *testing.T, clk *faultClock, credential entraid.Credential, timeout time.Duration) (*stack, *lockedBuffer) {
	t.Helper()
	st := newStack(t, nil)
	st.mw.client = faultClient(t, st, clk, credential, timeout)
	logs := &lockedBuffer{}
	st.mw.log = log.New(logs, "", 0)
	return st, logs
}

func faultClient(t *testing.T, st *stack, clk *faultClock, credential entraid.Credential, timeout time.Duration) *entraid.Client {
	t.Helper()
	c := validConfig()
	c.MicrosoftEntraID.AuthorityHost = st.tenant.URL
	c.MicrosoftEntraID.ClientSecret = st.tenant.ClientSecret
	s, err := validate(c, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if timeout > 0 {
		s.entra.HTTPClient = &http.Client{Timeout: timeout}
	}
	s.entra.Now = clk.Now
	if credential != nil {
		s.entra.Credential = credential
	}
	client, err := entraid.NewClient(s.entra)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// signInAttempt starts a sign-in in a new browser and opens the callback,
// returning its answer and how long the callback took.
func signInAttempt(t *testing.T, st *stack) (*http.Response, string, time.Duration) {
	t.Helper()
	c := noRedirects(st.browser())
	callback := st.startLogin(c, "/")
	start := time.Now()
	resp, body := navigate(t, c, callback)
	return resp, body, time.Since(start)
}

// wantPage checks an answer's status and the code on its page.
func wantPage(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || !strings.Contains(body, code) {
		t.Fatalf("got %d, want %d with %q: %.400q", resp.StatusCode, status, code, body)
	}
}

// wantSignedIn checks that a callback answer signed the user in.
func wantSignedIn(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusFound || !hasSession(resp) {
		t.Fatalf("got %d, want a sign-in: %.400q", resp.StatusCode, body)
	}
}

func noPanicLogged(t *testing.T, logs *lockedBuffer) {
	t.Helper()
	if strings.Contains(logs.String(), "internal error") {
		t.Fatalf("the plugin panicked:\n%s", logs)
	}
}

func TestSlowTenantEndpointsTimeOutWithinBounds(t *testing.T) {
	tests := []struct {
		endpoint string
		status   int
		code     string
	}{
		{entraidtest.Discovery, http.StatusServiceUnavailable, "idp_unavailable"},
		{entraidtest.JWKS, http.StatusBadGateway, "invalid_id_token"},
		{entraidtest.Token, http.StatusServiceUnavailable, "idp_unavailable"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run("a slow "+tt.endpoint+" endpoint", func(t *testing.T) {
			st, logs := faultStack(t, newFaultClock(), nil, faultTimeout)
			var resp *http.Response
			var body string
			var took time.Duration
			if tt.endpoint == entraidtest.Discovery {
				st.tenant.SetFault(tt.endpoint, entraidtest.Fault{Delay: slowAnswer})
				start := time.Now()
				resp, body = navigate(t, noRedirects(st.browser()), st.server.URL+"/")
				took = time.Since(start)
			} else {
				c := noRedirects(st.browser())
				callback := st.startLogin(c, "/")
				st.tenant.SetFault(tt.endpoint, entraidtest.Fault{Delay: slowAnswer})
				start := time.Now()
				resp, body = navigate(t, c, callback)
				took = time.Since(start)
			}
			wantPage(t, resp, body, tt.status, tt.code)
			if took > answerBound {
				t.Errorf("the answer took %v, want at most %v", took, answerBound)
			}
			noPanicLogged(t, logs)
		})
	}
}

func TestATenantThatIsDownGivesAClearPageAndRecoversByItself(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		fault    entraidtest.Fault
		status   int
		code     string
		// remembered: the client remembers the failure for a few seconds
		// (discovery and keys), so recovery needs the clock to move.
		remembered bool
	}{
		{"discovery answers 503", entraidtest.Discovery, entraidtest.Fault{Status: 503, Body: "Service Unavailable"}, 503, "idp_unavailable", true},
		{"discovery answers 502", entraidtest.Discovery, entraidtest.Fault{Status: 502}, 503, "idp_unavailable", true},
		{"discovery answers 500 in Entra's JSON", entraidtest.Discovery, entraidtest.Fault{Status: 500, Body: `{"error":"server_error"}`}, 503, "idp_unavailable", true},
		{"the keys answer 503", entraidtest.JWKS, entraidtest.Fault{Status: 503}, 502, "invalid_id_token", true},
		{"the token endpoint answers 503", entraidtest.Token, entraidtest.Fault{Status: 503, Body: "<html>down</html>"}, 503, "idp_unavailable", false},
		{"the token endpoint answers 504", entraidtest.Token, entraidtest.Fault{Status: 504}, 503, "idp_unavailable", false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			clk := newFaultClock()
			st, logs := faultStack(t, clk, nil, 0)
			var resp *http.Response
			var body string
			if tt.endpoint == entraidtest.Discovery {
				st.tenant.SetFault(tt.endpoint, tt.fault)
				resp, body = navigate(t, noRedirects(st.browser()), st.server.URL+"/")
			} else {
				c := noRedirects(st.browser())
				callback := st.startLogin(c, "/")
				st.tenant.SetFault(tt.endpoint, tt.fault)
				resp, body = navigate(t, c, callback)
			}
			wantPage(t, resp, body, tt.status, tt.code)

			st.tenant.SetFault(tt.endpoint, entraidtest.Fault{})
			if tt.remembered {
				// Within the failure memory, no new fetch is made.
				hits := st.tenant.Hits(tt.endpoint)
				if tt.endpoint == entraidtest.Discovery {
					resp, body = navigate(t, noRedirects(st.browser()), st.server.URL+"/")
				} else {
					resp, body, _ = signInAttempt(t, st)
				}
				wantPage(t, resp, body, tt.status, tt.code)
				if got := st.tenant.Hits(tt.endpoint) - hits; got != 0 {
					t.Errorf("a remembered failure was fetched again %d times", got)
				}
				clk.Advance(6 * time.Second)
			}
			resp, body, _ = signInAttempt(t, st)
			wantSignedIn(t, resp, body)
			noPanicLogged(t, logs)
		})
	}

	t.Run("the tenant refuses connections", func(t *testing.T) {
		st, logs := faultStack(t, newFaultClock(), nil, 0)
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		c := validConfig()
		c.MicrosoftEntraID.AuthorityHost = closed.URL
		c.MicrosoftEntraID.ClientSecret = st.tenant.ClientSecret
		s, err := validate(c, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		s.entra.HTTPClient = &http.Client{Timeout: faultTimeout}
		client, err := entraid.NewClient(s.entra)
		if err != nil {
			t.Fatal(err)
		}
		st.mw.client = client
		resp, body := navigate(t, noRedirects(st.browser()), st.server.URL+"/")
		wantPage(t, resp, body, http.StatusServiceUnavailable, "idp_unavailable")
		noPanicLogged(t, logs)
	})
}

func TestGarbageFromTheTenantGivesAClearError(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		body     string
		status   int // of the fault
		want     int
		code     string
	}{
		{"discovery answers HTML", entraidtest.Discovery, "<html>maintenance</html>", 200, 503, "idp_unavailable"},
		{"discovery answers null", entraidtest.Discovery, "null", 200, 503, "idp_unavailable"},
		{"discovery answers a JSON array", entraidtest.Discovery, "[1,2,3]", 200, 503, "idp_unavailable"},
		{"discovery answers endpoints that are not URLs", entraidtest.Discovery,
			`{"issuer":"x","authorization_endpoint":"javascript:alert(1)","token_endpoint":"//x","jwks_uri":"file:///etc/passwd"}`, 200, 503, "idp_unavailable"},
		{"discovery answers a document over 1 MB", entraidtest.Discovery, `{"issuer":"` + strings.Repeat("x", 1<<20+10) + `"}`, 200, 503, "idp_unavailable"},
		{"discovery answers truncated JSON", entraidtest.Discovery, `{"issuer":"https://login.microsoftonline.com/`, 200, 503, "idp_unavailable"},
		{"the keys answer HTML", entraidtest.JWKS, "<html>oops</html>", 200, 502, "invalid_id_token"},
		{"the keys answer no keys", entraidtest.JWKS, `{"keys":null}`, 200, 502, "invalid_id_token"},
		{"the keys answer a weak key", entraidtest.JWKS, `{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`, 200, 502, "invalid_id_token"},
		{"the keys answer numbers where strings belong", entraidtest.JWKS, `{"keys":[{"kty":1,"kid":2,"n":3,"e":4}]}`, 200, 502, "invalid_id_token"},
		{"the token endpoint answers HTML", entraidtest.Token, "<html>oops</html>", 200, 503, "idp_unavailable"},
		{"the token endpoint answers no ID token", entraidtest.Token, `{"access_token":"x","token_type":"Bearer"}`, 200, 503, "idp_unavailable"},
		{"the token endpoint answers an ID token that is a number", entraidtest.Token, `{"id_token":42}`, 200, 503, "idp_unavailable"},
		{"the token endpoint answers an ID token that is no JWT", entraidtest.Token, `{"id_token":"not.a.jwt"}`, 200, 401, "invalid_id_token"},
		{"the token endpoint answers a bad expires_in", entraidtest.Token, `{"id_token":"a.b.c","expires_in":"soon"}`, 200, 503, "idp_unavailable"},
		{"the token endpoint answers 400 in HTML", entraidtest.Token, "<html>bad request</html>", 400, 503, "idp_unavailable"},
		{"the token endpoint answers an error with CR LF", entraidtest.Token,
			`{"error":"invalid_grant","error_description":"AADSTS70008: expired\r\nTrace ID: 1\r\n<script>","error_codes":[70008],"trace_id":"t-1"}`, 400, 502, "AADSTS70008"},
	}
	st := newStack(t, nil)
	logs := &lockedBuffer{}
	st.mw.log = log.New(logs, "", 0)
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			// A client of its own: a failure must not be remembered into
			// the next case.
			st.mw.client = faultClient(t, st, newFaultClock(), nil, 0)
			fault := entraidtest.Fault{Status: tt.status, Body: tt.body}
			var resp *http.Response
			var body string
			if tt.endpoint == entraidtest.Discovery {
				st.tenant.SetFault(tt.endpoint, fault)
				resp, body = navigate(t, noRedirects(st.browser()), st.server.URL+"/")
			} else {
				c := noRedirects(st.browser())
				callback := st.startLogin(c, "/")
				st.tenant.SetFault(tt.endpoint, fault)
				resp, body = navigate(t, c, callback)
			}
			st.tenant.SetFault(tt.endpoint, entraidtest.Fault{})
			wantPage(t, resp, body, tt.want, tt.code)
			if strings.Contains(body, "<script>") {
				t.Fatal("the page carries the tenant's markup unescaped")
			}
			noPanicLogged(t, logs)
		})
	}
}

// parallelGet sends n GETs to rawURL at once, each from its own browser,
// and returns their statuses.
func parallelGet(st *stack, urls []string, browsers []*http.Client) []int {
	statuses := make([]int, len(urls))
	var wg sync.WaitGroup
	for i := range urls {
		i := i
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest("GET", urls[i], nil)
			if err != nil {
				return
			}
			req.Header.Set("Accept", "text/html")
			resp, err := browsers[i].Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	return statuses
}

func TestConcurrentRequestsShareOneFetch(t *testing.T) {
	// Enough to overlap under Yaegi, where goroutines are expensive.
	const n = 12
	newBrowsers := func(st *stack) []*http.Client {
		out := make([]*http.Client, n)
		for i := range out {
			out[i] = noRedirects(st.browser())
		}
		return out
	}
	same := func(u string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = u
		}
		return out
	}
	checkAll := func(t *testing.T, statuses []int, want int) {
		t.Helper()
		for i, s := range statuses {
			if s != want {
				t.Fatalf("request %d: status %d, want %d (all: %v)", i, s, want, statuses)
			}
		}
	}

	t.Run("while discovery is missing", func(t *testing.T) {
		st, _ := faultStack(t, newFaultClock(), nil, 0)
		st.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Delay: 100 * time.Millisecond})
		checkAll(t, parallelGet(st, same(st.server.URL+"/"), newBrowsers(st)), http.StatusFound)
		if got := st.tenant.Hits(entraidtest.Discovery); got != 1 {
			t.Fatalf("%d concurrent sign-ins fetched discovery %d times, want 1", n, got)
		}
	})

	t.Run("while discovery is down", func(t *testing.T) {
		st, _ := faultStack(t, newFaultClock(), nil, 0)
		st.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Status: 503, Delay: 100 * time.Millisecond})
		checkAll(t, parallelGet(st, same(st.server.URL+"/"), newBrowsers(st)), http.StatusServiceUnavailable)
		if got := st.tenant.Hits(entraidtest.Discovery); got != 1 {
			t.Fatalf("%d concurrent sign-ins fetched a failing discovery %d times, want 1", n, got)
		}
	})

	callbacks := func(st *stack, browsers []*http.Client) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = st.startLogin(browsers[i], "/")
		}
		return out
	}

	t.Run("while the keys are missing", func(t *testing.T) {
		st, _ := faultStack(t, newFaultClock(), nil, 0)
		browsers := newBrowsers(st)
		urls := callbacks(st, browsers)
		st.tenant.SetFault(entraidtest.JWKS, entraidtest.Fault{Delay: 100 * time.Millisecond})
		checkAll(t, parallelGet(st, urls, browsers), http.StatusFound)
		if got := st.tenant.Hits(entraidtest.JWKS); got != 1 {
			t.Fatalf("%d concurrent callbacks fetched the keys %d times, want 1", n, got)
		}
	})

	t.Run("after the tenant rolled its key over", func(t *testing.T) {
		clk := newFaultClock()
		st, _ := faultStack(t, clk, nil, 0)
		resp, body, _ := signInAttempt(t, st)
		wantSignedIn(t, resp, body)
		browsers := newBrowsers(st)
		urls := callbacks(st, browsers)
		st.tenant.RotateKey(true)
		// Past the minimum interval between refetches for an unknown kid.
		clk.Advance(61 * time.Second)
		hits := st.tenant.Hits(entraidtest.JWKS)
		checkAll(t, parallelGet(st, urls, browsers), http.StatusFound)
		if got := st.tenant.Hits(entraidtest.JWKS) - hits; got != 1 {
			t.Fatalf("%d concurrent callbacks with a new key fetched the keys %d times, want 1", n, got)
		}
	})
}

func TestSignedInUsersKeepWorkingWhileTheTenantIsDown(t *testing.T) {
	st, logs := faultStack(t, newFaultClock(), nil, 0)
	c := st.browser()
	st.signIn(c)
	for _, e := range []string{entraidtest.Discovery, entraidtest.JWKS, entraidtest.Token, entraidtest.Authorize} {
		st.tenant.SetFault(e, entraidtest.Fault{Status: http.StatusServiceUnavailable})
	}
	st.tenant.Close()

	for i := 0; i < 5; i++ {
		resp, body := navigate(t, c, st.server.URL+"/while-down")
		if resp.StatusCode != http.StatusOK || body != "upstream /while-down" {
			t.Fatalf("request %d while the tenant is down: %d %q", i, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", st.server.URL+"/portals/main/profile", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("profile while the tenant is down: %d", resp.StatusCode)
	}
	// Signing out needs no tenant either.
	req, _ = http.NewRequest("POST", st.server.URL+"/portals/main/logout", strings.NewReader("rd=%2Fbye"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", st.server.URL)
	resp, err = noRedirects(c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(findSetCookie(resp, "__Host-entraauth_main="), "Max-Age=0") {
		t.Fatalf("logout while the tenant is down: %d, Set-Cookie %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	noPanicLogged(t, logs)
}

// assertionStack is a stack whose middleware authenticates with
// clientAssertion value, resolved with getenv, against the stack's tenant.
// The assertion cache and the Entra ID client run on clk.
func assertionStack(t *testing.T, value string, getenv func(string) string, clk *faultClock) (*stack, *lockedBuffer) {
	t.Helper()
	st := newStack(t, nil)
	c := validConfig()
	c.MicrosoftEntraID.AuthorityHost = st.tenant.URL
	c.MicrosoftEntraID.ClientSecret = ""
	c.MicrosoftEntraID.ClientAssertion = value
	s, err := validate(c, getenv)
	if err != nil {
		t.Fatal(err)
	}
	// A cache of the test's own rather than assertion.Shared's: that one is
	// keyed by the source's endpoint, so a fake on a port an earlier test's
	// fake had would be answered from that test's cache, with an assertion
	// its tenant trusts and this one does not.
	src, err := assertion.Parse(value, st.tenant.URL, getenv)
	if err != nil {
		t.Fatal(err)
	}
	cache := assertion.NewCache(src)
	cache.Now = clk.Now
	// Through a variable: Yaegi v0.16.1 panics when the composite goes
	// straight into the interface field.
	var credential entraid.Credential = entraid.ClientAssertion{Get: cache.Assertion}
	s.entra.Credential = credential
	s.assertions = cache
	s.entra.Now = clk.Now
	client, err := entraid.NewClient(s.entra)
	if err != nil {
		t.Fatal(err)
	}
	m := newMiddleware(st.mw.next, "faults", s, client)
	logs := &lockedBuffer{}
	m.log = log.New(logs, "", 0)
	st.mw = m
	st.server.Config.Handler = m
	return st, logs
}

// tenantAssertion mints client assertions the fake tenant trusts: its own
// issuer and keys, the token exchange audience, and a subject its app
// registration has a federated credential for.
func tenantAssertion(tenant *entraidtest.Tenant) func(clientID string) (string, time.Time) {
	return func(clientID string) (string, time.Time) {
		tenant.TrustFederatedIssuer(tenant.Issuer(), nil, clientID)
		now := time.Now()
		exp := now.Add(time.Hour)
		tok := tenant.SignToken(map[string]interface{}{
			"iss": tenant.Issuer(), "sub": clientID, "aud": entraidtest.TokenExchangeAudience,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
		})
		return tok, exp
	}
}

func TestClientAssertionSourcesFailing(t *testing.T) {
	const identity = "5e0c3b1a-9f2d-4c8e-a7b6-1d2e3f4a5b6c"

	imds := func(t *testing.T) (*stack, *lockedBuffer, *assertiontest.Server, *faultClock, *[]time.Duration) {
		fake := assertiontest.NewIMDS()
		t.Cleanup(func() { fake.Close() })
		clk := newFaultClock()
		st, logs := assertionStack(t, "AzureManagedIdentity="+identity, func(name string) string { return fake.Getenv(name) }, clk)
		fake.Mint = tenantAssertion(st.tenant)
		mi, ok := st.mw.assertions.Source().(*assertion.ManagedIdentity)
		if !ok {
			t.Fatalf("the source is %T, want a managed identity", st.mw.assertions.Source())
		}
		waits := &[]time.Duration{}
		var mu sync.Mutex
		mi.Sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			*waits = append(*waits, d)
			mu.Unlock()
			return nil
		}
		mi.HTTPClient = &http.Client{Timeout: faultTimeout}
		return st, logs, fake, clk, waits
	}
	tsiam := func(t *testing.T) (*stack, *lockedBuffer, *assertiontest.Server, *faultClock) {
		fake := assertiontest.NewTsiam()
		t.Cleanup(func() { fake.Close() })
		clk := newFaultClock()
		st, logs := assertionStack(t, "tsiam="+fake.URL, noEnv, clk)
		fake.Mint = tenantAssertion(st.tenant)
		ts, ok := st.mw.assertions.Source().(*assertion.Tsiam)
		if !ok {
			t.Fatalf("the source is %T, want tsiam", st.mw.assertions.Source())
		}
		ts.HTTPClient = &http.Client{Timeout: faultTimeout}
		return st, logs, fake, clk
	}

	t.Run("IMDS throttles once, then answers", func(t *testing.T) {
		st, logs, fake, _, waits := imds(t)
		fake.FailNext(http.StatusTooManyRequests)
		resp, body, _ := signInAttempt(t, st)
		wantSignedIn(t, resp, body)
		if fake.Hits() != 2 || len(*waits) != 1 {
			t.Fatalf("IMDS hits %d, waits %v: want one retry after a wait", fake.Hits(), *waits)
		}
		noPanicLogged(t, logs)
	})

	t.Run("IMDS fails on every attempt, then recovers", func(t *testing.T) {
		st, logs, fake, clk, _ := imds(t)
		fake.FailNext(500, 503, 429, 502)
		resp, body, _ := signInAttempt(t, st)
		wantPage(t, resp, body, http.StatusBadGateway, "client_assertion_unavailable")
		if fake.Hits() != 4 {
			t.Fatalf("IMDS hits %d, want 4 attempts", fake.Hits())
		}
		// The failure is remembered: a burst of sign-ins does not hammer IMDS.
		resp, body, _ = signInAttempt(t, st)
		wantPage(t, resp, body, http.StatusBadGateway, "client_assertion_unavailable")
		if fake.Hits() != 4 {
			t.Fatalf("IMDS hits %d after a remembered failure, want 4", fake.Hits())
		}
		clk.Advance(6 * time.Second)
		resp, body, _ = signInAttempt(t, st)
		wantSignedIn(t, resp, body)
		noPanicLogged(t, logs)
	})

	t.Run("IMDS hangs, then recovers", func(t *testing.T) {
		st, logs, fake, clk, _ := imds(t)
		fake.SetDelay(slowAnswer)
		resp, body, took := signInAttempt(t, st)
		wantPage(t, resp, body, http.StatusServiceUnavailable, "client_assertion_unavailable")
		if took > answerBound {
			t.Errorf("the callback took %v, want at most %v", took, answerBound)
		}
		fake.SetDelay(0)
		clk.Advance(6 * time.Second)
		resp, body, _ = signInAttempt(t, st)
		wantSignedIn(t, resp, body)
		noPanicLogged(t, logs)
	})

	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		status := status
		t.Run("tsiam answers "+http.StatusText(status)+", then recovers", func(t *testing.T) {
			st, logs, fake, clk := tsiam(t)
			fake.FailNext(status)
			resp, body, _ := signInAttempt(t, st)
			wantPage(t, resp, body, http.StatusBadGateway, "client_assertion_unavailable")
			clk.Advance(6 * time.Second)
			resp, body, _ = signInAttempt(t, st)
			wantSignedIn(t, resp, body)
			noPanicLogged(t, logs)
		})
	}

	t.Run("tsiam hangs", func(t *testing.T) {
		st, logs, fake, _ := tsiam(t)
		fake.SetDelay(slowAnswer)
		resp, body, took := signInAttempt(t, st)
		wantPage(t, resp, body, http.StatusServiceUnavailable, "client_assertion_unavailable")
		if took > answerBound {
			t.Errorf("the callback took %v, want at most %v", took, answerBound)
		}
		noPanicLogged(t, logs)
	})
}

func TestAPanicBecomesA500ForThatRequestOnly(t *testing.T) {
	// serve calls ServeHTTP directly: a panic that escaped would reach this
	// goroutine, as it would reach Traefik.
	serve := func(t *testing.T, m *Middleware, r *http.Request) *httptest.ResponseRecorder {
		t.Helper()
		w := httptest.NewRecorder()
		escaped := true
		func() {
			defer func() {
				if v := recover(); v != nil {
					t.Errorf("a panic escaped the middleware: %v", v)
				}
			}()
			m.ServeHTTP(w, r)
			escaped = false
		}()
		if escaped {
			t.FailNow()
		}
		return w
	}

	t.Run("a credential that panics during the code exchange", func(t *testing.T) {
		p := &panickingCredential{}
		var credential entraid.Credential = p
		st, logs := faultStack(t, newFaultClock(), credential, 0)
		c := noRedirects(st.browser())
		callback := st.startLogin(c, "/")
		u, _ := url.Parse(callback)
		r := httptest.NewRequest("GET", callback, nil)
		r.Header.Set("Accept", "text/html")
		for _, ck := range c.Jar.Cookies(u) {
			r.AddCookie(ck)
		}
		w := serve(t, st.mw, r)
		if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "internal_error") {
			t.Fatalf("got %d %q, want 500 internal_error", w.Code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), "credential exploded") || strings.Contains(w.Body.String(), "goroutine") {
			t.Fatal("the page shows the panic")
		}
		if !strings.Contains(logs.String(), `internal error on GET "/portals/main/oauth2/callback": credential exploded`) {
			t.Fatalf("the panic was not logged: %q", logs)
		}
		// The next request is served as usual.
		resp, _ := navigate(t, noRedirects(st.browser()), st.server.URL+"/")
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("next request: %d", resp.StatusCode)
		}
	})

	t.Run("a clock that panics while a session is opened", func(t *testing.T) {
		m, got := guard(t, nil)
		logs := &lockedBuffer{}
		m.log = log.New(logs, "", 0)
		cookie := sessionCookie(t, m, aliceSession())
		setClock(m, func() time.Time { panic("clock exploded") })
		r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
		r.Header.Set("Accept", "application/json")
		r.Header.Set("Cookie", cookie)
		*got = nil
		w := serve(t, m, r)
		if w.Code != http.StatusInternalServerError || *got != nil {
			t.Fatalf("got %d (upstream reached: %v), want 500", w.Code, *got != nil)
		}
		if !strings.Contains(logs.String(), "clock exploded") {
			t.Fatalf("the panic was not logged: %q", logs)
		}
	})
}

func TestRequestTimeoutBoundsEveryCallToEntraGraphAndTheAssertionSource(t *testing.T) {
	// Each service answers after slowAnswer: within the default 10 s, so
	// only microsoftEntraID.requestTimeout, given through New, can make the
	// plugin give up first.
	overage := alice
	overage.Groups = make([]string, 0, 250)
	for i := 0; i < 250; i++ {
		overage.Groups = append(overage.Groups, fmt.Sprintf("a1b2c3d4-0000-4000-8000-%012d", i))
	}
	tests := []struct {
		name   string
		setup  func(t *testing.T) *stack
		status int
		code   string
		title  string
	}{
		{"Entra ID's token endpoint", func(t *testing.T) *stack {
			st := newStack(t, func(c *Config) { c.MicrosoftEntraID.RequestTimeout = "1s" })
			st.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Delay: slowAnswer})
			return st
		}, http.StatusServiceUnavailable, "idp_unavailable", "Microsoft Entra ID is unreachable"},
		{"Microsoft Graph", func(t *testing.T) *stack {
			st := newStackFor(t, overage, func(c *Config) {
				c.MicrosoftEntraID.RequestTimeout = "1s"
				c.AllowedGroups = []string{overage.Groups[7]}
			})
			st.tenant.SetFault(entraidtest.Graph, entraidtest.Fault{Delay: slowAnswer})
			return st
		}, http.StatusBadGateway, "groups_unavailable", "Group memberships could not be read"},
		{"a client assertion source (tsiam)", func(t *testing.T) *stack {
			fake := assertiontest.NewTsiam()
			t.Cleanup(func() { fake.Close() })
			st := newStack(t, func(c *Config) {
				c.MicrosoftEntraID.RequestTimeout = "1s"
				c.MicrosoftEntraID.ClientSecret = ""
				c.MicrosoftEntraID.ClientAssertion = "tsiam=" + fake.URL
			})
			fake.Mint = tenantAssertion(st.tenant)
			fake.SetDelay(slowAnswer)
			return st
		}, http.StatusServiceUnavailable, "client_assertion_unavailable", "could not be reached"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			st := tt.setup(t)
			resp, body, took := signInAttempt(t, st)
			wantPage(t, resp, body, tt.status, tt.code)
			if !strings.Contains(body, tt.title) {
				t.Errorf("the page does not say %q: %.400q", tt.title, body)
			}
			if took > answerBound {
				t.Errorf("the callback took %v with a 1s request timeout, want at most %v", took, answerBound)
			}
		})
	}
}
