package entraidtest

import "time"

// APIAccessTokenClaims returns the claims of a v2 access token that a
// client of an API got for user u with delegated scopes scp (space
// separated): what an API protected by the plugin receives as a bearer
// token. Sign them with SignToken, after mutating them if need be.
func (t *Tenant) APIAccessTokenClaims(u User, audience, scp string) map[string]interface{} {
	c := t.accessTokenClaims(audience)
	c["oid"] = u.OID
	c["sub"] = pairwiseSubject(u.OID, audience)
	c["name"] = u.Name
	c["preferred_username"] = u.PreferredUsername
	c["scp"] = scp
	c["idtyp"] = "user"
	if len(u.Roles) > 0 {
		c["roles"] = append([]string(nil), u.Roles...)
	}
	if len(u.Groups) > 0 && len(u.Groups) <= 200 {
		c["groups"] = append([]string(nil), u.Groups...)
	}
	return c
}

// AppAccessTokenClaims returns the claims of a v2 access token that the
// application appID got for itself (client credentials) for audience, with
// the app roles it was granted.
func (t *Tenant) AppAccessTokenClaims(appID, audience string, roles []string) map[string]interface{} {
	c := t.accessTokenClaims(audience)
	oid := newGUID()
	c["oid"] = oid
	c["sub"] = oid
	c["azp"] = appID
	c["idtyp"] = "app"
	if len(roles) > 0 {
		c["roles"] = append([]string(nil), roles...)
	}
	return c
}

func (t *Tenant) accessTokenClaims(audience string) map[string]interface{} {
	now := t.now()
	return map[string]interface{}{
		"aud":    audience,
		"iss":    t.Issuer(),
		"iat":    now.Unix(),
		"nbf":    now.Unix(),
		"exp":    now.Add(time.Hour).Unix(),
		"azp":    newGUID(),
		"azpacr": "1",
		"tid":    t.TenantID,
		"uti":    randomString(22),
		"rh":     "0.A" + randomString(60) + ".",
		"ver":    "2.0",
	}
}
