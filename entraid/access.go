package entraid

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tfa-plugin/entraauth/jwt"
)

// ErrInvalidAccessToken means a bearer token failed a check; the wrapping
// error names the check, in words fit for a WWW-Authenticate header.
var ErrInvalidAccessToken = errors.New("entraid: invalid access token")

// AccessPolicy says which access tokens an API accepts.
type AccessPolicy struct {
	// Audiences are the accepted aud values: the API's client ID, the aud
	// of every v2.0 token, and/or its application ID URI (api://...), which
	// v1.0 tokens carry when the client asked for the API by it.
	Audiences []string
	// AllowV1 also accepts v1.0 tokens, whose issuer is
	// https://sts.windows.net/{tid}/: an API whose manifest leaves
	// accessTokenAcceptedVersion (api.requestedAccessTokenVersion) unset
	// gets those.
	AllowV1 bool
}

// AccessClaims are the verified claims of an access token for an API.
type AccessClaims struct {
	OID               string // the user, or the calling app's service principal
	TID               string
	Name              string
	PreferredUsername string
	AppID             string   // the calling application (azp, or appid in v1)
	Scopes            []string // delegated permissions (scp)
	Roles             []string // app roles, for users and for apps
	Groups            []string
	// AppOnly is true for a token an application got for itself (client
	// credentials): idtyp app, or no idtyp, no scp and sub equal to oid.
	AppOnly bool
}

// VerifyAccessToken checks an access token that a client sent to an API
// this tenant protects: RS256 by a key of the tenant's JWKS, issuer (v2, or
// v1 when allowed), audience, tenant, exp and nbf. Tokens for other APIs
// such as Microsoft Graph carry a nonce header and cannot be verified by
// anyone but that API: they are refused with an explanation. Failures wrap
// ErrInvalidAccessToken; an unreachable tenant is ErrUnavailable.
func (c *Client) VerifyAccessToken(ctx context.Context, raw string, p AccessPolicy) (*AccessClaims, error) {
	tok, err := jwt.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the token is not a JWT", ErrInvalidAccessToken)
	}
	if tok.Header.Nonce {
		return nil, fmt.Errorf("%w: the token is for Microsoft Graph or another Microsoft API (it has a nonce header); request a token for this API's scope instead", ErrInvalidAccessToken)
	}
	if tok.Header.Alg != "RS256" {
		return nil, fmt.Errorf("%w: alg %q is not RS256", ErrInvalidAccessToken, tok.Header.Alg)
	}
	if tok.Header.Kid == "" {
		return nil, fmt.Errorf("%w: the token names no signing key", ErrInvalidAccessToken)
	}
	md, domainTID, err := c.metadata(ctx)
	if err != nil {
		return nil, err
	}
	key, err := c.signingKey(ctx, md.JWKSURI, tok.Header.Kid, false)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: unknown signing key", ErrInvalidAccessToken)
	}
	if err := tok.VerifyRS256(key); err != nil {
		return nil, fmt.Errorf("%w: bad signature", ErrInvalidAccessToken)
	}

	tid := tok.String("tid")
	if err := c.checkTenant(tid, domainTID); err != nil {
		return nil, fmt.Errorf("%w: the token is from another tenant", ErrInvalidAccessToken)
	}
	iss := tok.String("iss")
	v2 := md.Issuer
	if c.tenantKind == tenantMulti {
		v2 = strings.Replace(v2, "{tenantid}", tid, 1)
	}
	if iss != v2 && !(p.AllowV1 && iss == "https://sts.windows.net/"+tid+"/") {
		return nil, fmt.Errorf("%w: issuer %q is not accepted", ErrInvalidAccessToken, iss)
	}
	aud := tok.Strings("aud")
	if len(aud) != 1 || !audienceAccepted(p.Audiences, aud[0]) {
		if len(aud) == 1 && IsGUID(aud[0]) && tok.String("ver") == "2.0" && !anyGUID(p.Audiences) {
			// The likely mistake: an API registered for v2.0 tokens,
			// configured with its application ID URI only.
			return nil, fmt.Errorf("%w: the token is for another audience (a v2.0 token names the API by its client ID, and no client ID is accepted)", ErrInvalidAccessToken)
		}
		return nil, fmt.Errorf("%w: the token is for another audience", ErrInvalidAccessToken)
	}
	if _, _, err := c.checkTimes(tok); err != nil {
		if strings.Contains(err.Error(), "exp:") {
			return nil, fmt.Errorf("%w: the token expired", ErrInvalidAccessToken)
		}
		return nil, fmt.Errorf("%w: the token is not valid now", ErrInvalidAccessToken)
	}

	ac := &AccessClaims{
		OID:               tok.String("oid"),
		TID:               tid,
		Name:              tok.String("name"),
		PreferredUsername: tok.String("preferred_username"),
		AppID:             tok.String("azp"),
		Roles:             tok.Strings("roles"),
		Groups:            tok.Strings("groups"),
		Scopes:            strings.Fields(tok.String("scp")),
	}
	if ac.PreferredUsername == "" {
		// v1.0 tokens: upn, or unique_name for accounts without one.
		ac.PreferredUsername = tok.String("upn")
	}
	if ac.PreferredUsername == "" {
		ac.PreferredUsername = tok.String("unique_name")
	}
	if ac.AppID == "" {
		ac.AppID = tok.String("appid")
	}
	if ac.AppID == "" {
		// Every access token names the client it was issued to; an ID
		// token (whose aud is the client ID) does not.
		return nil, fmt.Errorf("%w: the token names no client application (azp or appid): an ID token is not an access token", ErrInvalidAccessToken)
	}
	if ac.OID == "" {
		return nil, fmt.Errorf("%w: the token has no oid", ErrInvalidAccessToken)
	}
	// idtyp (an optional claim) says so; without it, an application's own
	// token has no scp and its sub is its oid (the service principal),
	// while a user's sub is pairwise per application and never is. No scp
	// alone is not enough: a user's token without one would be taken for an
	// application's and skip the rules for people.
	idtyp := tok.String("idtyp")
	ac.AppOnly = idtyp == "app" || (idtyp == "" && len(ac.Scopes) == 0 && ac.OID == tok.String("sub"))
	return ac, nil
}

// audienceAccepted reports whether aud is one of accepted. v1.0 tokens name
// the API by the application ID URI the client asked for, with or without
// a trailing slash (Microsoft's optional claims reference, aud): both are
// the same API.
func audienceAccepted(accepted []string, aud string) bool {
	return contains(accepted, aud) || strings.HasSuffix(aud, "/") && contains(accepted, strings.TrimSuffix(aud, "/"))
}

func anyGUID(list []string) bool {
	for _, v := range list {
		if IsGUID(v) {
			return true
		}
	}
	return false
}
