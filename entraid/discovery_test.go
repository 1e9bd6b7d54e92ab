package entraid

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

func TestMetadata(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	md, err := f.client.Metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	base := f.tenant.URL + "/" + f.tenant.TenantID
	want := Metadata{
		Issuer:                f.tenant.Issuer(),
		AuthorizationEndpoint: base + "/oauth2/v2.0/authorize",
		TokenEndpoint:         base + "/oauth2/v2.0/token",
		JWKSURI:               base + "/discovery/v2.0/keys",
		EndSessionEndpoint:    base + "/oauth2/v2.0/logout",
	}
	if *md != want {
		t.Errorf("got %+v\nwant %+v", *md, want)
	}

	t.Run("is cached for 24 hours", func(t *testing.T) {
		md.Issuer = "changed by the caller"
		for i := 0; i < 3; i++ {
			again, err := f.client.Metadata(context.Background())
			if err != nil || again.Issuer != want.Issuer {
				t.Fatalf("%v %v", again, err)
			}
		}
		if n := f.tenant.Hits(entraidtest.Discovery); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		f.clock.Advance(24*time.Hour + time.Second)
		if _, err := f.client.Metadata(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := f.tenant.Hits(entraidtest.Discovery); n != 2 {
			t.Errorf("%d fetches after 24 h, want 2", n)
		}
	})
}

func TestMetadataTenantForms(t *testing.T) {
	tests := []struct {
		name   string
		tenant func(ten *entraidtest.Tenant) string
		allow  bool
	}{
		{"a verified domain", func(ten *entraidtest.Tenant) string { return "contoso.example" }, false},
		{"an upper-case tenant ID", func(ten *entraidtest.Tenant) string { return strings.ToUpper(ten.TenantID) }, false},
		{"organizations", func(ten *entraidtest.Tenant) string { return "organizations" }, true},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, entraidtest.Options{}, nil)
			cfg := Config{AuthorityHost: f.tenant.URL, Tenant: tt.tenant(f.tenant), ClientID: f.tenant.ClientID, Credential: ClientSecret(f.tenant.ClientSecret), Now: f.clock.Now}
			if tt.allow {
				cfg.AllowedTenants = []string{f.tenant.TenantID}
			}
			c, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.client = c
			if _, err := c.Metadata(context.Background()); err != nil {
				t.Fatal(err)
			}
			tok := f.signIn(t, "n1")
			claims, err := c.VerifyIDToken(context.Background(), tok.IDToken, "n1")
			if err != nil {
				t.Fatal(err)
			}
			if claims.TID != f.tenant.TenantID {
				t.Errorf("tid %s", claims.TID)
			}
		})
	}
}

func TestMetadataFailures(t *testing.T) {
	tests := []struct {
		name    string
		fault   entraidtest.Fault
		tenant  string // overrides the configured tenant
		wantErr string
	}{
		{"a 503 is unavailable", entraidtest.Fault{Status: 503, Body: "<html>Service Unavailable</html>"}, "", "HTTP 503"},
		{"an Entra error is unavailable and quoted", entraidtest.Fault{Status: 500, Body: `{"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred.\r\nTrace ID: t1","error_codes":[90033],"trace_id":"t1"}`}, "", "AADSTS90033: A transient error has occurred. (trace ID t1)"},
		{"an unknown tenant is unavailable with AADSTS90002", entraidtest.Fault{}, "fabrikam.example", "AADSTS90002"},
		{"HTML is unavailable", entraidtest.Fault{Status: 200, Body: "<html>captive portal</html>"}, "", "is not an OpenID configuration"},
		{"a JSON array is unavailable", entraidtest.Fault{Status: 200, Body: `[]`}, "", "is not an OpenID configuration"},
		{"missing endpoints are unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"x"}`}, "", "authorization_endpoint \"\": missing"},
		{"a relative endpoint is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"https://h/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/v2.0","authorization_endpoint":"/authorize","token_endpoint":"AUTH/t","jwks_uri":"AUTH/k"}`}, "", "authorization_endpoint \"/authorize\": not on the authority host"},
		{"a token endpoint on another host is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"AUTH/TENANT/v2.0","authorization_endpoint":"AUTH/a","token_endpoint":"https://attacker.example/TENANT/oauth2/v2.0/token","jwks_uri":"AUTH/k"}`}, "", "token_endpoint \"https://attacker.example/TENANT/oauth2/v2.0/token\": not on the authority host"},
		{"a token endpoint on another port is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"AUTH/TENANT/v2.0","authorization_endpoint":"AUTH/a","token_endpoint":"http://127.0.0.1:1/t","jwks_uri":"AUTH/k"}`}, "", "token_endpoint \"http://127.0.0.1:1/t\": not on the authority host"},
		{"keys on another host are unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"AUTH/TENANT/v2.0","authorization_endpoint":"AUTH/a","token_endpoint":"AUTH/t","jwks_uri":"https://attacker.example/keys"}`}, "", "jwks_uri \"https://attacker.example/keys\": not on the authority host"},
		{"an end-session endpoint on another host is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"AUTH/TENANT/v2.0","authorization_endpoint":"AUTH/a","token_endpoint":"AUTH/t","jwks_uri":"AUTH/k","end_session_endpoint":"https://attacker.example/logout"}`}, "", "end_session_endpoint \"https://attacker.example/logout\": not on the authority host"},
		{"an authorization endpoint with user info is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"AUTH/TENANT/v2.0","authorization_endpoint":"http://user@127.0.0.1:1/a","token_endpoint":"AUTH/t","jwks_uri":"AUTH/k"}`}, "", "not on the authority host"},
		{"a non-RS256 tenant is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"AUTH/x/v2.0","authorization_endpoint":"AUTH/a","token_endpoint":"AUTH/t","jwks_uri":"AUTH/k","id_token_signing_alg_values_supported":["ES256"]}`}, "", "not signed with RS256"},
		{"an issuer of another tenant is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"AUTH/99999999-9999-4999-8999-999999999999/v2.0","authorization_endpoint":"AUTH/a","token_endpoint":"AUTH/t","jwks_uri":"AUTH/k"}`}, "", "names tenant 99999999-9999-4999-8999-999999999999"},
		{"an issuer of another shape is unavailable", entraidtest.Fault{Status: 200, Body: `{"issuer":"https://sts.windows.net/x/","authorization_endpoint":"AUTH/a","token_endpoint":"AUTH/t","jwks_uri":"AUTH/k"}`}, "", "not of the form"},
	}
	for _, tt := range tests {
		f := newFixture(t, entraidtest.Options{}, func(c *Config) {
			if tt.tenant != "" {
				c.Tenant = tt.tenant
			}
		})
		// AUTH stands for the fake's authority, TENANT for its tenant ID.
		fault := tt.fault
		fault.Body = strings.NewReplacer("AUTH", f.tenant.URL, "TENANT", f.tenant.TenantID).Replace(fault.Body)
		f.tenant.SetFault(entraidtest.Discovery, fault)
		_, err := f.client.Metadata(context.Background())
		wantErr := strings.Replace(tt.wantErr, "TENANT", f.tenant.TenantID, -1)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want ErrUnavailable containing %q", tt.name, err, wantErr)
		}
	}
}

func TestMetadataOutageAndRecovery(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	ctx := context.Background()
	f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Status: 503, Body: "down"})

	if _, err := f.client.Metadata(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v, want ErrUnavailable", err)
	}
	t.Run("a failure is remembered for a few seconds", func(t *testing.T) {
		f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{})
		for i := 0; i < 5; i++ {
			if _, err := f.client.Metadata(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("call %d: error %v, want the remembered failure", i, err)
			}
		}
		if n := f.tenant.Hits(entraidtest.Discovery); n != 1 {
			t.Errorf("%d fetches during the outage, want 1", n)
		}
	})
	t.Run("and then recovers by itself", func(t *testing.T) {
		f.clock.Advance(failureTTL + time.Second)
		if _, err := f.client.Metadata(ctx); err != nil {
			t.Fatal(err)
		}
		if n := f.tenant.Hits(entraidtest.Discovery); n != 2 {
			t.Errorf("%d fetches, want 2", n)
		}
	})
	t.Run("an expired document is still served while the tenant is down", func(t *testing.T) {
		f.clock.Advance(25 * time.Hour)
		f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Status: 500})
		md, err := f.client.Metadata(ctx)
		if err != nil || md.Issuer != f.tenant.Issuer() {
			t.Fatalf("%v %v", md, err)
		}
		if _, err := f.client.Metadata(ctx); err != nil {
			t.Fatal(err)
		}
		if n := f.tenant.Hits(entraidtest.Discovery); n != 3 {
			t.Errorf("%d fetches, want 3 (one refresh attempt)", n)
		}
	})
}

func TestMetadataConcurrentCallersShareOneFetch(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	// A slow tenant makes every caller arrive while the fetch is in flight.
	f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Delay: 100 * time.Millisecond})
	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.client.Metadata(context.Background())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tenant.Hits(entraidtest.Discovery); n != 1 {
		t.Errorf("%d callers caused %d fetches, want 1", callers, n)
	}
}

func TestMetadataTimeouts(t *testing.T) {
	t.Run("the HTTP client's timeout bounds a slow tenant", func(t *testing.T) {
		f := newFixture(t, entraidtest.Options{}, func(c *Config) { c.HTTPClient = &http.Client{Timeout: 100 * time.Millisecond} })
		f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Delay: time.Second})
		start := time.Now()
		_, err := f.client.Metadata(context.Background())
		if !errors.Is(err, ErrUnavailable) || time.Since(start) > 900*time.Millisecond {
			t.Errorf("error %v after %s", err, time.Since(start))
		}
	})
	t.Run("the context bounds a slow tenant, and is not remembered as a failure", func(t *testing.T) {
		f := newFixture(t, entraidtest.Options{}, nil)
		f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Delay: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := f.client.Metadata(ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("error %v", err)
		}
		f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{})
		if _, err := f.client.Metadata(context.Background()); err != nil {
			t.Errorf("the cancelled call's failure was remembered: %v", err)
		}
	})
	t.Run("a caller waiting behind a slow fetch keeps its own deadline", func(t *testing.T) {
		f := newFixture(t, entraidtest.Options{}, nil)
		f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Delay: 500 * time.Millisecond})
		done := make(chan error, 1)
		go func() {
			_, err := f.client.Metadata(context.Background())
			done <- err
		}()
		for f.tenant.Hits(entraidtest.Discovery) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := f.client.Metadata(ctx)
		if !errors.Is(err, ErrUnavailable) || time.Since(start) > 400*time.Millisecond {
			t.Errorf("waiter: error %v after %s", err, time.Since(start))
		}
		if err := <-done; err != nil {
			t.Errorf("fetcher: %v", err)
		}
	})
}
