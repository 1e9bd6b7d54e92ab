package entraid

import (
	"context"
	"errors"
	"fmt"
	"net/url"
)

// Credential authenticates the app to the token endpoint by adding its
// fields to the token request form.
type Credential interface {
	SetClientAuth(ctx context.Context, form url.Values) error
}

// ClientSecret authenticates with a client secret (client_secret_post).
// Its String method hides the value, so that logging a Config does not leak
// it.
type ClientSecret string

// SetClientAuth sets client_secret.
func (s ClientSecret) SetClientAuth(ctx context.Context, form url.Values) error {
	if s == "" {
		return errors.New("entraid: client secret is empty")
	}
	form.Set("client_secret", string(s))
	return nil
}

// String returns a placeholder, never the secret.
func (s ClientSecret) String() string {
	return "[redacted]"
}

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ClientAssertion authenticates with a JWT from a federated identity (a
// managed identity, a Kubernetes service account, tsiam): Get returns the
// current assertion and is called for every token request, so it should
// cache.
type ClientAssertion struct {
	Get func(ctx context.Context) (string, error)
}

// SetClientAuth sets client_assertion_type and client_assertion.
func (a ClientAssertion) SetClientAuth(ctx context.Context, form url.Values) error {
	if a.Get == nil {
		return errors.New("entraid: client assertion has no source")
	}
	jwt, err := a.Get(ctx)
	if err != nil {
		return fmt.Errorf("entraid: client assertion: %w", err)
	}
	if jwt == "" {
		return errors.New("entraid: client assertion is empty")
	}
	form.Set("client_assertion_type", ClientAssertionType)
	form.Set("client_assertion", jwt)
	return nil
}

// SignedAssertion authenticates with a client assertion the application
// signs itself (certificate credentials, private_key_jwt), whose audience
// is the token endpoint it is sent to: Sign is called with that endpoint
// for every token request, and must return a fresh assertion each time.
type SignedAssertion struct {
	Sign func(ctx context.Context, audience string) (string, error)
}

// SetClientAuth is not enough for a SignedAssertion, which must know the
// token endpoint: the client calls setClientAuthFor instead.
func (a SignedAssertion) SetClientAuth(ctx context.Context, form url.Values) error {
	return errors.New("entraid: a signed client assertion needs the token endpoint")
}

// setClientAuthFor sets client_assertion_type and an assertion signed for
// tokenEndpoint.
func (a SignedAssertion) setClientAuthFor(ctx context.Context, form url.Values, tokenEndpoint string) error {
	if a.Sign == nil {
		return errors.New("entraid: signed client assertion has no signer")
	}
	jwt, err := a.Sign(ctx, tokenEndpoint)
	if err != nil {
		return fmt.Errorf("entraid: client assertion: %w", err)
	}
	form.Set("client_assertion_type", ClientAssertionType)
	form.Set("client_assertion", jwt)
	return nil
}

// setClientAuth authenticates a token request to tokenEndpoint with
// credential.
func setClientAuth(ctx context.Context, credential Credential, form url.Values, tokenEndpoint string) error {
	// A type assertion to the concrete type: Yaegi follows those reliably.
	if sa, ok := credential.(SignedAssertion); ok {
		return sa.setClientAuthFor(ctx, form, tokenEndpoint)
	}
	return credential.SetClientAuth(ctx, form)
}
