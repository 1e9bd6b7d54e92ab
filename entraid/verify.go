package entraid

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// clockSkew is tolerated on exp, nbf and iat, as Microsoft's libraries do.
const clockSkew = 5 * time.Minute

// Claims are the verified claims of an ID token that authorization and
// upstream headers use.
type Claims struct {
	OID               string // the user's object ID: stable, use it to identify users
	TID               string // the user's tenant ID
	Subject           string // pairwise per app
	Name              string
	PreferredUsername string // mutable: display only, never authorize on it
	Email             string // optional and unverified
	Roles             []string
	Groups            []string
	// GroupsOverage is true when the user is in more groups than fit in a
	// token: Groups is then empty and membership must come from Microsoft
	// Graph.
	GroupsOverage bool
	IssuedAt      time.Time
	Expiry        time.Time
	// Raw holds every claim as decoded (JSON numbers as float64).
	Raw map[string]interface{}
}

// VerifyIDToken checks an ID token from this client's sign-in and returns
// its claims. It accepts only RS256 signatures by a key of the tenant's
// JWKS, and checks iss, aud (and azp), exp, nbf and iat (with 5 minutes of
// skew), nonce (which must be the non-empty nonce of the authorization
// request), tid and oid. Every failure wraps ErrInvalidToken and names the
// check; a tenant that cannot be reached gives ErrUnavailable instead.
//
// raw must come straight from this client's token endpoint (Exchange): a
// kid the cached keys lack then always refetches them (see signingKey).
// Tokens from anyone else are bearer tokens (VerifyAccessToken).
func (c *Client) VerifyIDToken(ctx context.Context, raw, nonce string) (*Claims, error) {
	if nonce == "" {
		return nil, fmt.Errorf("%w: nonce: no nonce to compare with", ErrInvalidToken)
	}
	return c.verifyIDToken(ctx, raw, nonce, "", "")
}

// VerifyRefreshedIDToken checks the ID token of a refresh (Refresh with
// the sign-in scopes) of the session of user oid in tenant tid: every check
// of VerifyIDToken but the nonce, which belongs to the interactive sign-in
// only, and oid and tid must be the session's, so that a refresh token can
// never turn into another user's session.
func (c *Client) VerifyRefreshedIDToken(ctx context.Context, raw, oid, tid string) (*Claims, error) {
	if oid == "" || tid == "" {
		return nil, fmt.Errorf("%w: refresh: no user to compare with", ErrInvalidToken)
	}
	return c.verifyIDToken(ctx, raw, "", oid, tid)
}

// verifyIDToken checks raw, which comes from the token endpoint: with
// nonce for a sign-in, with the session's oid and tid for a refresh.
func (c *Client) verifyIDToken(ctx context.Context, raw, nonce, wantOID, wantTID string) (*Claims, error) {
	tok, err := jwt.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	// Checked before any I/O: no key lookup for tokens that cannot pass.
	if tok.Header.Alg != "RS256" {
		return nil, fmt.Errorf("%w: alg: %q, want RS256", ErrInvalidToken, tok.Header.Alg)
	}
	if tok.Header.Nonce {
		return nil, fmt.Errorf("%w: header: has a nonce header, so it is an access token, not an ID token", ErrInvalidToken)
	}
	if tok.Header.Typ != "" && !strings.EqualFold(tok.Header.Typ, "JWT") {
		return nil, fmt.Errorf("%w: typ: %q, want JWT", ErrInvalidToken, tok.Header.Typ)
	}
	if tok.Header.Kid == "" {
		return nil, fmt.Errorf("%w: kid: header has no key ID", ErrInvalidToken)
	}

	md, domainTID, err := c.metadata(ctx)
	if err != nil {
		return nil, err
	}
	key, err := c.signingKey(ctx, md.JWKSURI, tok.Header.Kid, true)
	if err != nil {
		return nil, err
	}
	if err := tok.VerifyRS256(key); err != nil {
		if errors.Is(err, jwt.ErrSignature) {
			return nil, fmt.Errorf("%w: signature: does not verify with key %q", ErrInvalidToken, tok.Header.Kid)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}

	tid := tok.String("tid")
	if err := c.checkTenant(tid, domainTID); err != nil {
		return nil, err
	}
	wantIss := md.Issuer
	if c.tenantKind == tenantMulti {
		wantIss = strings.Replace(wantIss, "{tenantid}", tid, 1)
	}
	if iss := tok.String("iss"); iss != wantIss {
		return nil, fmt.Errorf("%w: iss: %q, want %q", ErrInvalidToken, iss, wantIss)
	}
	if err := c.checkAudience(tok); err != nil {
		return nil, err
	}
	iat, exp, err := c.checkTimes(tok)
	if err != nil {
		return nil, err
	}
	if nonce != "" {
		got := tok.String("nonce")
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
			return nil, fmt.Errorf("%w: nonce: does not match the nonce of this login", ErrInvalidToken)
		}
	}
	if v, ok := tok.Claims["ver"]; ok && v != "2.0" {
		return nil, fmt.Errorf("%w: ver: %v, want 2.0", ErrInvalidToken, v)
	}
	oid := tok.String("oid")
	if oid == "" {
		return nil, fmt.Errorf("%w: oid: missing", ErrInvalidToken)
	}
	if wantOID != "" && !strings.EqualFold(oid, wantOID) {
		return nil, fmt.Errorf("%w: oid: %s, but the session being renewed is %s's", ErrInvalidToken, oid, wantOID)
	}
	if wantTID != "" && !strings.EqualFold(tid, wantTID) {
		return nil, fmt.Errorf("%w: tid: %s, but the session being renewed is of tenant %s", ErrInvalidToken, tid, wantTID)
	}

	cl := &Claims{
		OID:               oid,
		TID:               tid,
		Subject:           tok.String("sub"),
		Name:              tok.String("name"),
		PreferredUsername: tok.String("preferred_username"),
		Email:             tok.String("email"),
		Roles:             tok.Strings("roles"),
		Groups:            tok.Strings("groups"),
		IssuedAt:          iat,
		Expiry:            exp,
		Raw:               tok.Claims,
	}
	if names, ok := tok.Claims["_claim_names"].(map[string]interface{}); ok {
		_, cl.GroupsOverage = names["groups"]
	}
	if v, ok := tok.Claims["hasgroups"].(bool); ok && v {
		cl.GroupsOverage = true
	}
	return cl, nil
}

// checkTenant checks tid: the configured GUID, the GUID the discovery
// issuer names for a domain tenant, or one of AllowedTenants.
func (c *Client) checkTenant(tid, domainTID string) error {
	if !IsGUID(tid) {
		return fmt.Errorf("%w: tid: %q is not a tenant ID", ErrInvalidToken, tid)
	}
	switch c.tenantKind {
	case tenantGUID:
		if tid != c.tenant {
			return fmt.Errorf("%w: tid: %s, want %s", ErrInvalidToken, tid, c.tenant)
		}
	case tenantDomain:
		if tid != domainTID {
			return fmt.Errorf("%w: tid: %s, want %s (the ID of %s)", ErrInvalidToken, tid, domainTID, c.tenant)
		}
	case tenantMulti:
		if !c.allowed[tid] {
			return fmt.Errorf("%w: %w: tid: tenant %s is not in AllowedTenants", ErrInvalidToken, ErrTenantNotAllowed, tid)
		}
	}
	return nil
}

// checkAudience requires this client in aud; with several audiences, azp
// must name this client too (OpenID Connect Core 3.1.3.7).
func (c *Client) checkAudience(tok *jwt.Token) error {
	aud := tok.Strings("aud")
	if !contains(aud, c.clientID) {
		return fmt.Errorf("%w: aud: %q does not contain the client ID %s", ErrInvalidToken, aud, c.clientID)
	}
	azp, hasAzp := tok.Claims["azp"]
	if len(aud) > 1 && !hasAzp {
		return fmt.Errorf("%w: azp: several audiences %q and no azp", ErrInvalidToken, aud)
	}
	if hasAzp && azp != c.clientID {
		return fmt.Errorf("%w: azp: %v, want %s", ErrInvalidToken, azp, c.clientID)
	}
	return nil
}

// checkTimes checks exp, nbf and iat against the clock with clockSkew.
func (c *Client) checkTimes(tok *jwt.Token) (iat, exp time.Time, err error) {
	now := c.now()
	exp, ok := tok.Time("exp")
	if !ok {
		return iat, exp, fmt.Errorf("%w: exp: missing or not a NumericDate", ErrInvalidToken)
	}
	if !now.Before(exp.Add(clockSkew)) {
		return iat, exp, fmt.Errorf("%w: exp: expired at %s", ErrInvalidToken, exp.Format(time.RFC3339))
	}
	if _, present := tok.Claims["nbf"]; present {
		nbf, ok := tok.Time("nbf")
		if !ok {
			return iat, exp, fmt.Errorf("%w: nbf: not a NumericDate", ErrInvalidToken)
		}
		if now.Add(clockSkew).Before(nbf) {
			return iat, exp, fmt.Errorf("%w: nbf: not valid before %s", ErrInvalidToken, nbf.Format(time.RFC3339))
		}
	}
	iat, ok = tok.Time("iat")
	if !ok {
		return iat, exp, fmt.Errorf("%w: iat: missing or not a NumericDate", ErrInvalidToken)
	}
	if now.Add(clockSkew).Before(iat) {
		return iat, exp, fmt.Errorf("%w: iat: issued in the future, at %s", ErrInvalidToken, iat.Format(time.RFC3339))
	}
	return iat, exp, nil
}
