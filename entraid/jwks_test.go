package entraid

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// verify checks a fresh genuine ID token signed with the tenant's current
// key.
func (f *fixture) verify(t *testing.T) error {
	t.Helper()
	raw := f.tenant.SignToken(f.tenant.IDTokenClaims(f.tenant.Users[0], "n"))
	_, err := f.client.VerifyIDToken(context.Background(), raw, "n")
	return err
}

func (f *fixture) jwksHits() int { return f.tenant.Hits(entraidtest.JWKS) }

func TestKeyRotation(t *testing.T) {
	tests := []struct {
		name    string
		keepOld bool
	}{
		{"a rollover that keeps the old key", true},
		{"an abrupt rotation", false},
	}
	for _, tt := range tests {
		f := newFixture(t, entraidtest.Options{}, nil)
		oldToken := f.tenant.SignToken(f.tenant.IDTokenClaims(f.tenant.Users[0], "n"))
		if err := f.verify(t); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		f.tenant.RotateKey(tt.keepOld)

		// An ID token from the token endpoint under a new kid refetches the
		// keys at once, even right after the first fetch.
		if err := f.verify(t); err != nil {
			t.Errorf("%s: new kid right after the first fetch: %v", tt.name, err)
		}
		if n := f.jwksHits(); n != 2 {
			t.Errorf("%s: %d JWKS fetches, want 2", tt.name, n)
		}
		_, err := f.client.VerifyIDToken(context.Background(), oldToken, "n")
		if tt.keepOld && err != nil {
			t.Errorf("%s: token of the kept key: %v", tt.name, err)
		}
		if !tt.keepOld && !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: token of the dropped key: %v, want ErrInvalidToken", tt.name, err)
		}
	}
}

// bearer returns a genuine access token for an API of f's tenant, signed
// under kid (the current key's when empty), and the policy that accepts it.
func (f *fixture) bearer(kid string) (string, AccessPolicy) {
	api := entraidtest.API{ClientID: "6a7b8c9d-0000-4000-8000-00000000a91d", IdentifierURI: "api://jwks-test", TokenVersion: 2}
	claims := f.tenant.APIAccessTokenClaims(f.tenant.Users[0], api, "Items.Read")
	header := map[string]interface{}{"alg": "RS256", "typ": "JWT", "kid": kid}
	if kid == "" {
		header["kid"] = f.tenant.KeyID()
	}
	return f.tenant.SignTokenWithHeader(header, claims), AccessPolicy{Audiences: []string{api.ClientID}}
}

func TestUnknownKidRefetchIsRateLimitedForBearerTokens(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, func(c *Config) { c.KeyRefetchInterval = 10 * time.Minute })
	if err := f.verify(t); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		advance   time.Duration
		tokens    int
		wantFetch int
	}{
		{"forged kids right after a fetch cause none", 0, 10, 1},
		{"nor do they before the configured interval", 9 * time.Minute, 10, 1},
		{"after the interval, a flood causes one", 2 * time.Minute, 10, 2},
		{"and then none again", time.Minute, 10, 2},
	}
	for _, s := range steps {
		f.clock.Advance(s.advance)
		for i := 0; i < s.tokens; i++ {
			tok, policy := f.bearer("forged-" + s.name)
			_, err := f.client.VerifyAccessToken(context.Background(), tok, policy)
			if !errors.Is(err, ErrInvalidAccessToken) || !strings.Contains(err.Error(), "unknown signing key") {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if n := f.jwksHits(); n != s.wantFetch {
			t.Errorf("%s: %d JWKS fetches, want %d", s.name, n, s.wantFetch)
		}
	}
}

func TestAnEmergencyRotationRightAfterAForgedBearerKidDoesNotFailSignIns(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, func(c *Config) { c.KeyRefetchInterval = 10 * time.Minute })
	if err := f.verify(t); err != nil {
		t.Fatal(err)
	}
	// A bearer token with a forged kid spends the rate-limited refetch...
	f.clock.Advance(11 * time.Minute)
	tok, policy := f.bearer("forged-by-an-attacker")
	if _, err := f.client.VerifyAccessToken(context.Background(), tok, policy); !errors.Is(err, ErrInvalidAccessToken) {
		t.Fatalf("forged bearer kid: %v", err)
	}
	if n := f.jwksHits(); n != 2 {
		t.Fatalf("%d JWKS fetches after the forged kid, want 2", n)
	}
	// ...then Entra ID rotates to a brand-new key, and a user signs in at
	// once: the ID token from the token endpoint refetches anyway.
	f.tenant.RotateKey(false)
	if err := f.verify(t); err != nil {
		t.Fatalf("a sign-in right after the rotation: %v", err)
	}
	// Bearer tokens under the new key work too, without another fetch; a
	// second forged bearer kid still causes none.
	tok, policy = f.bearer("")
	if _, err := f.client.VerifyAccessToken(context.Background(), tok, policy); err != nil {
		t.Fatalf("a bearer token under the new key: %v", err)
	}
	tok, policy = f.bearer("forged-again")
	f.client.VerifyAccessToken(context.Background(), tok, policy)
	if n := f.jwksHits(); n != 3 {
		t.Errorf("%d JWKS fetches, want 3", n)
	}
}

func TestConcurrentSignInsUnderANewKidShareOneRefetch(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	if err := f.verify(t); err != nil {
		t.Fatal(err)
	}
	f.tenant.RotateKey(false)
	f.tenant.SetFault(entraidtest.JWKS, entraidtest.Fault{Delay: 200 * time.Millisecond, Status: 0})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.verify(t)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := f.jwksHits(); n != 2 {
		t.Errorf("10 concurrent sign-ins under a new kid made %d JWKS fetches in all, want 2", n)
	}
}

func TestKeysExpireAfter24Hours(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	if err := f.verify(t); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(24*time.Hour + time.Second)
	if err := f.verify(t); err != nil {
		t.Fatal(err)
	}
	if n := f.jwksHits(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
	t.Run("stale keys serve while the tenant is down", func(t *testing.T) {
		f.clock.Advance(25 * time.Hour)
		f.tenant.SetFault(entraidtest.JWKS, entraidtest.Fault{Status: 500})
		f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Status: 500})
		if err := f.verify(t); err != nil {
			t.Error(err)
		}
	})
}

func TestJWKSFailures(t *testing.T) {
	tests := []struct {
		name    string
		fault   entraidtest.Fault
		wantErr string
	}{
		{"a 500 is unavailable", entraidtest.Fault{Status: 500, Body: "oops"}, "jwks: GET"},
		{"HTML is unavailable", entraidtest.Fault{Status: 200, Body: "<html></html>"}, "jwks:"},
		{"a set without keys is unavailable", entraidtest.Fault{Status: 200, Body: `{"keys":[]}`}, "no keys"},
		{"a set without usable keys is unavailable", entraidtest.Fault{Status: 200, Body: `{"keys":[{"kty":"EC","kid":"x","crv":"P-256"}]}`}, "no usable key"},
	}
	for _, tt := range tests {
		f := newFixture(t, entraidtest.Options{}, nil)
		f.tenant.SetFault(entraidtest.JWKS, tt.fault)
		err := f.verify(t)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want ErrUnavailable containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestJWKSOutageAndRecovery(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	f.tenant.SetFault(entraidtest.JWKS, entraidtest.Fault{Status: 503})
	for i := 0; i < 3; i++ {
		if err := f.verify(t); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := f.jwksHits(); n != 1 {
		t.Errorf("%d JWKS fetches during the outage, want 1", n)
	}
	f.tenant.SetFault(entraidtest.JWKS, entraidtest.Fault{})
	f.clock.Advance(failureTTL + time.Second)
	if err := f.verify(t); err != nil {
		t.Errorf("after the outage: %v", err)
	}
}

func TestConcurrentVerifiesShareOneKeyFetch(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	if _, err := f.client.Metadata(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.tenant.SetFault(entraidtest.JWKS, entraidtest.Fault{Delay: 100 * time.Millisecond})
	raw := f.tenant.SignToken(f.tenant.IDTokenClaims(f.tenant.Users[0], "n"))
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.client.VerifyIDToken(context.Background(), raw, "n")
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
	if n := f.jwksHits(); n != 1 {
		t.Errorf("%d JWKS fetches, want 1", n)
	}
}
