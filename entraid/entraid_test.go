package entraid

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// clock is a settable clock shared by the client and the fake tenant.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a fake tenant and a client of it, on one clock.
type fixture struct {
	tenant *entraidtest.Tenant
	client *Client
	clock  *clock
}

const testRedirectURI = "https://app.example/portals/main/oauth2/callback"

// newFixture starts a tenant that signs alice in at once (unless opts says
// otherwise) and a client with its secret; cfg may change the Config.
func newFixture(t *testing.T, opts entraidtest.Options, cfg func(*Config)) *fixture {
	t.Helper()
	clk := newClock()
	if opts.SignIn == "" {
		opts.SignIn = "alice@contoso.example"
	}
	opts.Now = clk.Now
	ten := entraidtest.NewTenant(opts)
	t.Cleanup(ten.Close)
	config := Config{
		AuthorityHost: ten.URL,
		Tenant:        ten.TenantID,
		ClientID:      ten.ClientID,
		Credential:    ClientSecret(ten.ClientSecret),
		Now:           clk.Now,
	}
	if cfg != nil {
		cfg(&config)
	}
	c, err := NewClient(config)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{tenant: ten, client: c, clock: clk}
}

func pkce(seed string) (verifier, challenge string) {
	verifier = base64.RawURLEncoding.EncodeToString([]byte(seed + "-0123456789-0123456789-0123456789"))
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// noRedirect stops at the first answer. (Named parameters: Yaegi v0.16.1
// mis-binds unnamed parameters of a function literal called from compiled
// code.)
var noRedirect = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	return http.ErrUseLastResponse
}}

// authorize plays the browser: it follows AuthCodeURL to the tenant and
// returns the code and the PKCE verifier.
func (f *fixture) authorize(t *testing.T, nonce string) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce(nonce)
	u, err := f.client.AuthCodeURL(context.Background(), AuthRequest{RedirectURI: testRedirectURI, State: "state-" + nonce, Nonce: nonce, CodeChallenge: challenge})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code"), verifier
}

// signIn runs a whole sign-in and returns the tokens.
func (f *fixture) signIn(t *testing.T, nonce string) *Token {
	t.Helper()
	code, verifier := f.authorize(t, nonce)
	tok, err := f.client.Exchange(context.Background(), code, verifier, testRedirectURI)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewClient(t *testing.T) {
	const (
		tenant = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
		client = "11111111-2222-4333-8444-555555555555"
	)
	good := func() Config {
		return Config{Tenant: tenant, ClientID: client, Credential: ClientSecret("s")}
	}
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string // "" for success
	}{
		{"a minimal config is valid", func(c *Config) {}, ""},
		{"a trailing slash on the host is allowed", func(c *Config) { c.AuthorityHost = "https://login.microsoftonline.us/" }, ""},
		{"http on 127.0.0.1 is allowed for tests", func(c *Config) { c.AuthorityHost = "http://127.0.0.1:8080" }, ""},
		{"http on localhost is allowed for tests", func(c *Config) { c.AuthorityHost = "http://localhost:8080" }, ""},
		{"http on [::1] is allowed for tests", func(c *Config) { c.AuthorityHost = "http://[::1]:8080" }, ""},
		{"https on 127.0.0.1 is allowed for tests", func(c *Config) { c.AuthorityHost = "https://127.0.0.1:8443" }, ""},
		{"the US Government cloud is allowed", func(c *Config) { c.AuthorityHost = "https://login.microsoftonline.us" }, ""},
		{"the China cloud is allowed", func(c *Config) { c.AuthorityHost = "https://login.partner.microsoftonline.cn" }, ""},
		{"the public cloud's login.microsoft.com alias is allowed", func(c *Config) { c.AuthorityHost = "https://login.microsoft.com" }, ""},
		{"a host that is not Microsoft's is refused", func(c *Config) { c.AuthorityHost = "https://attacker.example" }, "not a Microsoft Entra ID sign-in host"},
		{"a host under Microsoft's name is refused", func(c *Config) { c.AuthorityHost = "https://login.microsoftonline.com.attacker.example" }, "not a Microsoft Entra ID sign-in host"},
		{"a private address is refused", func(c *Config) { c.AuthorityHost = "https://10.1.2.3" }, "not a Microsoft Entra ID sign-in host"},
		{"user info is refused", func(c *Config) { c.AuthorityHost = "https://x@login.microsoftonline.com" }, "scheme and host only"},
		{"http elsewhere is refused", func(c *Config) { c.AuthorityHost = "http://login.microsoftonline.com" }, "must use https"},
		{"another scheme is refused", func(c *Config) { c.AuthorityHost = "ftp://login.microsoftonline.com" }, "must use https"},
		{"a host with the tenant in its path is refused", func(c *Config) { c.AuthorityHost = "https://login.microsoftonline.com/" + tenant }, "scheme and host only"},
		{"a host with a query is refused", func(c *Config) { c.AuthorityHost = "https://login.microsoftonline.com?x=1" }, "scheme and host only"},
		{"a host without scheme is refused", func(c *Config) { c.AuthorityHost = "login.microsoftonline.com" }, "scheme and host only"},
		{"an upper-case tenant ID is accepted", func(c *Config) { c.Tenant = strings.ToUpper(tenant) }, ""},
		{"a verified domain is accepted", func(c *Config) { c.Tenant = "contoso.onmicrosoft.com" }, ""},
		{"a missing tenant is refused", func(c *Config) { c.Tenant = "" }, "Tenant is required"},
		{"a tenant that is neither is refused", func(c *Config) { c.Tenant = "contoso" }, "neither a tenant ID"},
		{"a tenant with a path is refused", func(c *Config) { c.Tenant = "contoso.example/x" }, "neither a tenant ID"},
		{"organizations needs AllowedTenants", func(c *Config) { c.Tenant = "organizations" }, "AllowedTenants"},
		{"common needs AllowedTenants", func(c *Config) { c.Tenant = "common" }, "AllowedTenants"},
		{"consumers is refused, even with AllowedTenants", func(c *Config) {
			c.Tenant = "consumers"
			c.AllowedTenants = []string{"9188040d-6c67-4c5b-b112-36a304b66dad"}
		}, "personal Microsoft accounts"},
		{"organizations with AllowedTenants is accepted", func(c *Config) { c.Tenant = "organizations"; c.AllowedTenants = []string{tenant} }, ""},
		{"AllowedTenants must be GUIDs", func(c *Config) { c.Tenant = "common"; c.AllowedTenants = []string{"contoso.example"} }, "not a tenant ID"},
		{"AllowedTenants with a single tenant is refused", func(c *Config) { c.AllowedTenants = []string{tenant} }, "applies only"},
		{"a missing client ID is refused", func(c *Config) { c.ClientID = " " }, "ClientID is required"},
		{"a client ID with a slash is refused", func(c *Config) { c.ClientID = "a/b" }, "not an application ID"},
		{"scopes without openid are refused", func(c *Config) { c.Scopes = []string{"profile", "email"} }, "must include openid"},
		{"a scope with spaces is refused", func(c *Config) { c.Scopes = []string{"openid profile"} }, "whitespace"},
		{"an empty scope is refused", func(c *Config) { c.Scopes = []string{"openid", ""} }, "empty"},
		{"a missing credential is refused", func(c *Config) { c.Credential = nil }, "Credential is required"},
	}
	for _, tt := range tests {
		cfg := good()
		tt.change(&cfg)
		c, err := NewClient(cfg)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "entraid: ") {
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.wantErr)
		}
		if c != nil {
			t.Errorf("%s: client returned with an error", tt.name)
		}
	}
}

func TestNewClientDefaults(t *testing.T) {
	c, err := NewClient(Config{Tenant: "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D", ClientID: "id", Credential: ClientSecret("s")})
	if err != nil {
		t.Fatal(err)
	}
	if c.host != DefaultAuthorityHost || c.scope != "openid profile email" || c.keyRefetch != time.Minute || c.http.Timeout != 10*time.Second || c.now == nil {
		t.Errorf("defaults: host %s scope %q refetch %s timeout %s", c.host, c.scope, c.keyRefetch, c.http.Timeout)
	}
	if want := "https://login.microsoftonline.com/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/v2.0/.well-known/openid-configuration"; c.metadataURL != want {
		t.Errorf("metadata URL %s, want %s", c.metadataURL, want)
	}
}

func TestNewClientDoesNoIO(t *testing.T) {
	ten := entraidtest.NewTenant(entraidtest.Options{})
	defer ten.Close()
	for i := 0; i < 3; i++ {
		if _, err := NewClient(Config{AuthorityHost: ten.URL, Tenant: ten.TenantID, ClientID: ten.ClientID, Credential: ClientSecret("s")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []string{entraidtest.Discovery, entraidtest.JWKS, entraidtest.Token} {
		if n := ten.Hits(e); n != 0 {
			t.Errorf("NewClient caused %d %s requests", n, e)
		}
	}
}

// TestAcquireHoldsUnderConcurrentRequests: many requests at once, each
// with a context of its own as Traefik's handlers have, take the client's
// two semaphores (discovery's and the keys'). Each holder is alone, nobody
// gives up while its context lives, and nothing hangs. Under yaegi test it
// catches a select shared between concurrent executions (see acquire).
func TestAcquireHoldsUnderConcurrentRequests(t *testing.T) {
	const workers = 128
	s := &semaphoreRace{inside: make([]int32, 4)}
	for range s.inside {
		s.sems = append(s.sems, make(chan struct{}, 1))
	}
	for w := 0; w < workers; w++ {
		go s.worker(1000)
	}
	deadline := time.Now().Add(30 * time.Second)
	for atomic.LoadInt64(&s.finished) < workers {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d workers hung", workers-atomic.LoadInt64(&s.finished), workers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.failures != 0 || s.overlaps != 0 {
		t.Fatalf("%d acquisitions failed (first: %v) and %d overlapped, with no context ended", s.failures, s.firstFailure.Load(), s.overlaps)
	}
}

// semaphoreRace is the shared state of TestAcquireHoldsUnderConcurrentRequests.
type semaphoreRace struct {
	sems                         []chan struct{}
	inside                       []int32 // holders of each semaphore
	failures, overlaps, finished int64
	firstFailure                 atomic.Value
}

// worker takes every semaphore in turn, rounds times, each round with a
// context of its own.
func (s *semaphoreRace) worker(rounds int) {
	defer atomic.AddInt64(&s.finished, 1)
	for i := 0; i < rounds; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for j := 0; j < len(s.sems); j++ {
			if err := acquire(ctx, s.sems[j]); err != nil {
				atomic.AddInt64(&s.failures, 1)
				s.firstFailure.Store(err.Error())
				continue
			}
			if atomic.AddInt32(&s.inside[j], 1) != 1 {
				atomic.AddInt64(&s.overlaps, 1)
			}
			atomic.AddInt32(&s.inside[j], -1)
			<-s.sems[j]
		}
		cancel()
	}
}

func TestAcquireGivesUpWhenTheContextEnds(t *testing.T) {
	sem := make(chan struct{}, 1)
	sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := acquire(ctx, sem); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("gave up after %v", d)
	}
	<-sem
	if err := acquire(context.Background(), sem); err != nil || len(sem) != 1 {
		t.Fatalf("a free semaphore: %v, length %d", err, len(sem))
	}
}
