package assertion_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

const userAssigned = "66666666-6666-6666-6666-666666666666"

// sleeps records the waits of a ManagedIdentity instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) Get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newManagedIdentity parses value against a fake and makes retries instant.
func newManagedIdentity(t *testing.T, srv *assertiontest.Server, value string) (*assertion.ManagedIdentity, *sleeps) {
	t.Helper()
	src, err := assertion.Parse(value, "", srv.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	m := src.(*assertion.ManagedIdentity)
	m.ArcTokenDir = srv.KeyDir
	s := &sleeps{}
	m.Sleep = s.Sleep
	return m, s
}

func fakeFor(kind string) *assertiontest.Server {
	switch kind {
	case assertiontest.KindAppService:
		return assertiontest.NewAppService()
	case assertiontest.KindArc:
		return assertiontest.NewArc()
	}
	return assertiontest.NewIMDS()
}

func TestManagedIdentitySendsTheExactRequest(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		value     string
		requests  int
		path      string
		query     url.Values
		header    map[string]string // "" means absent
		authorize bool              // the last request carries the Arc key
	}{
		{name: "IMDS, system-assigned", kind: assertiontest.KindIMDS, value: "AzureManagedIdentity", requests: 1,
			path:   "/metadata/identity/oauth2/token",
			query:  url.Values{"api-version": {"2018-02-01"}, "resource": {"api://AzureADTokenExchange"}},
			header: map[string]string{"Metadata": "true", "X-Identity-Header": "", "Authorization": ""}},
		{name: "IMDS, user-assigned", kind: assertiontest.KindIMDS, value: "AzureManagedIdentity=" + userAssigned, requests: 1,
			path:   "/metadata/identity/oauth2/token",
			query:  url.Values{"api-version": {"2018-02-01"}, "resource": {"api://AzureADTokenExchange"}, "client_id": {userAssigned}},
			header: map[string]string{"Metadata": "true", "X-Forwarded-For": ""}},
		{name: "App Service, system-assigned", kind: assertiontest.KindAppService, value: "AzureManagedIdentity", requests: 1,
			path:   "/msi/token",
			query:  url.Values{"api-version": {"2019-08-01"}, "resource": {"api://AzureADTokenExchange"}},
			header: map[string]string{"X-Identity-Header": "<secret>", "Authorization": ""}},
		{name: "App Service, user-assigned", kind: assertiontest.KindAppService, value: "AzureManagedIdentity=" + userAssigned, requests: 1,
			path:   "/msi/token",
			query:  url.Values{"api-version": {"2019-08-01"}, "resource": {"api://AzureADTokenExchange"}, "client_id": {userAssigned}},
			header: map[string]string{"X-Identity-Header": "<secret>"}},
		{name: "Azure Arc answers the challenge", kind: assertiontest.KindArc, value: "AzureManagedIdentity", requests: 2,
			path:      "/metadata/identity/oauth2/token",
			query:     url.Values{"api-version": {"2020-06-01"}, "resource": {"api://AzureADTokenExchange"}},
			header:    map[string]string{"Metadata": "true"},
			authorize: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeFor(tt.kind)
			defer srv.Close()
			m, _ := newManagedIdentity(t, srv, tt.value)
			tok, err := m.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok.Value == "" || tok.Expires.Before(time.Now().Add(23*time.Hour)) {
				t.Errorf("token %q expiring %v, want the fake's 24 h token", tok.Value, tok.Expires)
			}
			reqs := srv.Requests()
			if len(reqs) != tt.requests {
				t.Fatalf("%d requests, want %d: %+v", len(reqs), tt.requests, reqs)
			}
			for i, r := range reqs {
				if r.Method != http.MethodGet || r.Path != tt.path || !reflect.DeepEqual(r.Query, tt.query) {
					t.Errorf("request %d: %s %s %v\nwant GET %s %v", i, r.Method, r.Path, r.Query, tt.path, tt.query)
				}
				for name, want := range tt.header {
					if want == "<secret>" {
						want = srv.IdentityHeader
					}
					if got := r.Header.Get(name); got != want {
						t.Errorf("request %d: header %s = %q, want %q", i, name, got, want)
					}
				}
			}
			last := reqs[len(reqs)-1]
			if tt.authorize {
				if reqs[0].Header.Get("Authorization") != "" || reqs[0].Status != http.StatusUnauthorized {
					t.Errorf("first Arc request: Authorization %q, status %d; want none and 401", reqs[0].Header.Get("Authorization"), reqs[0].Status)
				}
				if !strings.HasPrefix(last.Header.Get("Authorization"), "Basic ") {
					t.Errorf("second Arc request: Authorization %q, want Basic <key>", last.Header.Get("Authorization"))
				}
			}
			if last.Status != http.StatusOK {
				t.Errorf("last request answered %d", last.Status)
			}
		})
	}
}

func TestManagedIdentityReadsExpiryAsStringOrNumber(t *testing.T) {
	expires := time.Unix(time.Now().Add(3*time.Hour).Unix(), 0)
	for _, kind := range []string{assertiontest.KindIMDS, assertiontest.KindAppService, assertiontest.KindArc} {
		for _, numeric := range []bool{false, true} {
			kind, numeric := kind, numeric
			name := kind + " with expiry as string"
			if numeric {
				name = kind + " with expiry as number"
			}
			t.Run(name, func(t *testing.T) {
				srv := fakeFor(kind)
				defer srv.Close()
				srv.SetNumericExpiry(numeric)
				srv.Mint = func(clientID string) (string, time.Time) { return "minted-for-" + clientID, expires }
				m, _ := newManagedIdentity(t, srv, "AzureManagedIdentity")
				tok, err := m.Fetch(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if tok.Value != "minted-for-"+srv.SystemClientID || !tok.Expires.Equal(expires) {
					t.Errorf("got %q expiring %v, want minted-for-%s expiring %v", tok.Value, tok.Expires, srv.SystemClientID, expires)
				}
			})
		}
	}
}

func TestManagedIdentityRetryPolicy(t *testing.T) {
	tests := []struct {
		name     string
		faults   []int
		requests int
		sleeps   []time.Duration
		wantErr  string // "" means success
	}{
		{name: "404 while the identity is assigned is retried", faults: []int{404},
			requests: 2, sleeps: []time.Duration{500 * time.Millisecond}},
		{name: "410, 429 and 503 are retried with growing waits", faults: []int{410, 429, 503},
			requests: 4, sleeps: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}},
		{name: "500 four times gives up after four attempts", faults: []int{500, 500, 500, 500, 500},
			requests: 4, sleeps: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
			wantErr: "HTTP 500 server_error: Internal Server Error; gave up after 4 attempts"},
		{name: "400 is not retried", faults: []int{400},
			requests: 1, wantErr: "HTTP 400 invalid_request"},
		{name: "403 is not retried", faults: []int{403},
			requests: 1, wantErr: "HTTP 403"},
		{name: "401 is not retried", faults: []int{401},
			requests: 1, wantErr: "HTTP 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := assertiontest.NewIMDS()
			defer srv.Close()
			srv.FailNext(tt.faults...)
			m, slept := newManagedIdentity(t, srv, "AzureManagedIdentity="+userAssigned)
			_, err := m.Fetch(context.Background())
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Fetch = %v", err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v, want %q", err, tt.wantErr)
				}
				if _, ok := assertion.AsError(err); !ok {
					t.Errorf("error %v is not an *assertion.Error", err)
				}
			}
			if srv.Hits() != tt.requests {
				t.Errorf("%d requests, want %d", srv.Hits(), tt.requests)
			}
			if got := slept.Get(); !reflect.DeepEqual(got, tt.sleeps) && !(len(got) == 0 && len(tt.sleeps) == 0) {
				t.Errorf("waits %v, want %v", got, tt.sleeps)
			}
		})
	}
}

func TestManagedIdentityRetryWaitsAreBounded(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.FailNext(429, 429, 429, 429)
	m, slept := newManagedIdentity(t, srv, "AzureManagedIdentity")
	m.Fetch(context.Background())
	var total time.Duration
	for _, d := range slept.Get() {
		if d > 4*time.Second {
			t.Errorf("a wait of %v exceeds 4 s", d)
		}
		total += d
	}
	if total > 12*time.Second {
		t.Errorf("waited %v in total", total)
	}
}

func TestManagedIdentityRealSleepHonoursTheContext(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.FailNext(503, 503)
	m, _ := newManagedIdentity(t, srv, "AzureManagedIdentity")
	m.Sleep = nil // the real timer
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Fetch(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, assertion.ErrUnavailable) {
		t.Errorf("Fetch = %v, want the deadline wrapped as ErrUnavailable", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Fetch took %v despite a 50 ms deadline", time.Since(start))
	}
}

func TestManagedIdentityRefusals(t *testing.T) {
	tests := []struct {
		name   string
		kind   string
		value  string
		setup  func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity)
		want   []string
		status int // of the *assertion.Error, 0 when another error is expected
	}{
		{name: "IMDS without the user-assigned identity", kind: assertiontest.KindIMDS, value: "AzureManagedIdentity=" + userAssigned,
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				srv.AssignIdentities("other")
			},
			status: 400,
			want:   []string{"assertion: managed identity (IMDS): HTTP 400 invalid_request: Identity not found", "no managed identity with client ID " + userAssigned + " is assigned"}},
		{name: "App Service without the user-assigned identity", kind: assertiontest.KindAppService, value: "AzureManagedIdentity=" + userAssigned,
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				srv.AssignIdentities("other")
			},
			status: 400,
			want:   []string{"managed identity (App Service): HTTP 400: Unable to load the proper Managed Identity.", "is assigned to this resource"}},
		{name: "App Service with a stale IDENTITY_HEADER", kind: assertiontest.KindAppService, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				m.IdentityHeader = "stale"
			},
			status: 400,
			want:   []string{"X-IDENTITY-HEADER", "IDENTITY_HEADER is current"}},
		{name: "Arc naming a file outside its folder", kind: assertiontest.KindArc, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				srv.ForgeChallenge("/etc/shadow.key")
			},
			want: []string{`the challenge names "/etc/shadow.key", which is not a .key file in`, "refusing to read it"}},
		{name: "Arc naming a file that is not a .key", kind: assertiontest.KindArc, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				srv.ForgeChallenge(filepath.Join(srv.KeyDir, "secret.txt"))
			},
			want: []string{"which is not a .key file", "refusing to read it"}},
		{name: "Arc escaping its folder with ..", kind: assertiontest.KindArc, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				srv.ForgeChallenge(srv.KeyDir + "/../x.key")
			},
			want: []string{"refusing to read it"}},
		{name: "Arc naming an oversized key", kind: assertiontest.KindArc, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				path := filepath.Join(srv.KeyDir, "big.key")
				os.WriteFile(path, make([]byte, 5000), 0o600)
				srv.ForgeChallenge(path)
			},
			want: []string{"is not a regular file of at most 4096 bytes"}},
		{name: "Arc naming a symlink", kind: assertiontest.KindArc, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				path := filepath.Join(srv.KeyDir, "link.key")
				os.Symlink("/etc/hostname", path)
				srv.ForgeChallenge(path)
			},
			want: []string{"is not a regular file"}},
		{name: "Arc naming a missing key", kind: assertiontest.KindArc, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				srv.ForgeChallenge(filepath.Join(srv.KeyDir, "gone.key"))
			},
			want: []string{"reading the challenge key", "himds group"}},
		{name: "Arc refusing the key", kind: assertiontest.KindArc, value: "AzureManagedIdentity",
			setup: func(t *testing.T, srv *assertiontest.Server, m *assertion.ManagedIdentity) {
				path := filepath.Join(srv.KeyDir, "wrong.key")
				os.WriteFile(path, []byte("not-the-secret"), 0o600)
				srv.ForgeChallenge(path)
			},
			status: 401,
			want:   []string{"HTTP 401 unauthorized", "the Arc agent refused the challenge key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeFor(tt.kind)
			defer srv.Close()
			m, _ := newManagedIdentity(t, srv, tt.value)
			tt.setup(t, srv, m)
			_, err := m.Fetch(context.Background())
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			e, ok := assertion.AsError(err)
			if tt.status != 0 && (!ok || e.StatusCode != tt.status) {
				t.Errorf("error %v: want an *assertion.Error with status %d", err, tt.status)
			}
			if tt.status == 0 && ok {
				t.Errorf("error %v: want no *assertion.Error", err)
			}
		})
	}
}

func TestManagedIdentityArcWithoutAChallenge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	src, err := assertion.Parse("AzureManagedIdentity", "", env(map[string]string{"IDENTITY_ENDPOINT": srv.URL, "IMDS_ENDPOINT": srv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no WWW-Authenticate: Basic realm=<key file> challenge") {
		t.Errorf("Fetch = %v", err)
	}
}

func TestManagedIdentityUnreachable(t *testing.T) {
	srv := assertiontest.NewIMDS()
	m, _ := newManagedIdentity(t, srv, "AzureManagedIdentity")
	srv.Close()
	_, err := m.Fetch(context.Background())
	if !errors.Is(err, assertion.ErrUnavailable) || !strings.Contains(err.Error(), "is this an Azure VM") {
		t.Errorf("Fetch = %v, want ErrUnavailable with a hint", err)
	}
}

func TestManagedIdentityTimesOut(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.SetDelay(time.Second)
	m, _ := newManagedIdentity(t, srv, "AzureManagedIdentity")
	m.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := m.Fetch(context.Background())
	if !errors.Is(err, assertion.ErrUnavailable) {
		t.Errorf("Fetch = %v, want ErrUnavailable", err)
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Errorf("Fetch took %v with a 50 ms client timeout", time.Since(start))
	}
}

func TestManagedIdentityThroughTheCache(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.SetDelay(50 * time.Millisecond) // so that the callers overlap
	m, _ := newManagedIdentity(t, srv, "AzureManagedIdentity="+userAssigned)
	c := assertion.NewCache(m)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Assertion(context.Background()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if srv.Hits() != 1 {
		t.Errorf("50 concurrent callers made %d requests to IMDS, want 1", srv.Hits())
	}
	c.Assertion(context.Background())
	if srv.Hits() != 1 {
		t.Errorf("a later call made a request; want the cached token")
	}
}

func TestManagedIdentityFailureIsSharedBriefly(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.FailNext(400)
	m, _ := newManagedIdentity(t, srv, "AzureManagedIdentity")
	clk := newClock()
	c := assertion.NewCache(m)
	c.Now = clk.Now
	for i := 0; i < 5; i++ {
		if _, err := c.Assertion(context.Background()); err == nil {
			t.Fatal("want the 400")
		}
	}
	if srv.Hits() != 1 {
		t.Errorf("a burst made %d requests to IMDS, want 1", srv.Hits())
	}
	clk.Add(6 * time.Second)
	if _, err := c.Assertion(context.Background()); err != nil {
		t.Errorf("after the failure expired: %v", err)
	}
	if srv.Hits() != 2 {
		t.Errorf("%d requests, want 2", srv.Hits())
	}
}

func TestManagedIdentityTokenMintedByTheFakeTenant(t *testing.T) {
	tenant := entraidtest.NewTenant(entraidtest.Options{})
	defer tenant.Close()
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.Mint = func(clientID string) (string, time.Time) {
		exp := time.Now().Add(24 * time.Hour)
		return tenant.SignToken(map[string]interface{}{
			"iss": tenant.Issuer(), "sub": srv.PrincipalID(clientID), "aud": "api://AzureADTokenExchange",
			"azp": clientID, "tid": tenant.TenantID, "iat": time.Now().Unix(), "exp": exp.Unix(),
		}), exp
	}
	tenant.TrustFederatedIssuer(tenant.Issuer(), nil, srv.PrincipalID(userAssigned))
	m, _ := newManagedIdentity(t, srv, "AzureManagedIdentity="+userAssigned)
	v, err := assertion.NewCache(m).Assertion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(tenant.URL+"/"+tenant.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {tenant.ClientID},
		"scope":                 {"api://AzureADTokenExchange/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {v},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the tenant refused the managed identity's assertion: %d", resp.StatusCode)
	}
}
