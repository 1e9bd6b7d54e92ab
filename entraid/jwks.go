package entraid

import (
	"context"
	"crypto/rsa"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// signingKey returns the tenant key with the given kid. Keys are fetched
// from jwks_uri on first use and after 24 hours. A kid not in the cached set
// triggers a refetch, because Entra ID rolls keys over and a new kid is the
// normal sign of it:
//
//   - for a token anyone can send (a bearer token), at most once per
//     KeyRefetchInterval, so that forged kids do not turn into a fetch per
//     request;
//   - for an ID token the client has just received from the token endpoint
//     over TLS (fromTokenEndpoint), always: the channel vouches for the
//     issuer (OpenID Connect Core 3.1.3.7), so its kid cannot be forged,
//     and an emergency rotation right after a forged bearer kid must not
//     fail sign-ins for a minute. Callers that waited while another caller
//     refetched use that fetch instead of making their own.
func (c *Client) signingKey(ctx context.Context, jwksURI, kid string, fromTokenEndpoint bool) (*rsa.PublicKey, error) {
	fetchesBefore := atomic.LoadInt64(&c.keyFetches)
	if err := acquire(ctx, c.keySem); err != nil {
		return nil, err
	}
	defer func() { <-c.keySem }()

	now := c.now()
	if c.keys == nil || !now.Before(c.keysExpires) {
		// On failure, stale keys are still better than none.
		if err := c.fetchKeys(ctx, jwksURI, now); err != nil && c.keys == nil {
			return nil, err
		}
	}
	if k := c.keys[kid]; k != nil {
		return k, nil
	}
	since := now.Sub(c.keysFetched)
	fetchedMeanwhile := atomic.LoadInt64(&c.keyFetches) != fetchesBefore
	if since >= c.keyRefetch || fromTokenEndpoint && !fetchedMeanwhile {
		if err := c.fetchKeys(ctx, jwksURI, now); err != nil {
			return nil, err
		}
		if k := c.keys[kid]; k != nil {
			return k, nil
		}
		since = 0
	}
	return nil, fmt.Errorf("%w: unknown signing key: kid %q is not in the tenant's JWKS (fetched %s ago)", ErrInvalidToken, kid, since.Round(time.Second))
}

// fetchKeys replaces the cached key set. A failure is remembered briefly and
// leaves the previous set in place.
func (c *Client) fetchKeys(ctx context.Context, jwksURI string, now time.Time) error {
	if c.keysErr != nil && now.Before(c.keysErrUntil) {
		return c.keysErr
	}
	c.keysFetched = now
	atomic.AddInt64(&c.keyFetches, 1)
	err := c.loadKeys(ctx, jwksURI, now)
	if err != nil && ctx.Err() == nil {
		c.keysErr = err
		c.keysErrUntil = now.Add(failureTTL)
	}
	return err
}

func (c *Client) loadKeys(ctx context.Context, jwksURI string, now time.Time) error {
	body, err := c.get(ctx, "jwks", jwksURI)
	if err != nil {
		return err
	}
	keys, err := jwt.ParseJWKS(body)
	if err != nil {
		return fmt.Errorf("%w: jwks: %s: %v", ErrUnavailable, jwksURI, err)
	}
	// One field per statement: Yaegi v0.16.1 drops a map assigned in a
	// multiple assignment to struct fields.
	c.keys = keys
	c.keysExpires = now.Add(keysTTL)
	c.keysErr = nil
	return nil
}
