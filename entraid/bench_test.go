package entraid

import (
	"context"
	"testing"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// BenchmarkVerifyIDToken is what the sign-in callback spends checking the
// ID token once the tenant's keys are cached: parse, RS256 verification
// and the claim checks. Run it under Yaegi too (make bench-go).
func BenchmarkVerifyIDToken(b *testing.B) {
	tenant := entraidtest.NewTenant(entraidtest.Options{})
	defer tenant.Close()
	client, err := NewClient(Config{
		AuthorityHost: tenant.URL,
		Tenant:        tenant.TenantID,
		ClientID:      tenant.ClientID,
		Credential:    ClientSecret(tenant.ClientSecret),
	})
	if err != nil {
		b.Fatal(err)
	}
	const nonce = "bench-nonce-0123456789"
	raw := tenant.SignToken(tenant.IDTokenClaims(tenant.Users[0], nonce))
	ctx := context.Background()
	// The first verification fetches discovery and keys, as the first
	// sign-in does; the loop measures the ones after it.
	if _, err := client.VerifyIDToken(ctx, raw, nonce); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.VerifyIDToken(ctx, raw, nonce); err != nil {
			b.Fatal(err)
		}
	}
}
