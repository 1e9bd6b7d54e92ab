package entraauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
	"github.com/tfa-plugin/entraauth/session"
)

// attack is one way to get past the middleware; run proves, through the
// middleware's own HTTP surface, that it is refused.
type attack struct {
	name string
	run  func(t *testing.T, a *arena)
}

// arena is what the attacks work against: the middleware in front of a
// fake tenant and an echoing upstream (st), a second middleware of the same
// kind reached without the network for cookie and header attacks
// (guarded), a middleware in auth-host mode, and the attacker's own key and
// key server.
type arena struct {
	st       *stack
	guarded  *Middleware
	upstream *http.Header // what guarded's upstream last received; nil: not reached
	authHost *Middleware
	api      *Middleware // accepts bearer tokens for attackAPI from st's tenant
	apiSeen  *http.Header
	// apiOfApp accepts bearer tokens whose audience is the sign-in app's
	// client ID, with a required scope, an allowed role for people and an
	// app role for applications.
	apiOfApp     *Middleware
	apiOfAppSeen *http.Header

	attacker     *rsa.PrivateKey
	attackerJWKS string // URL of a JWKS holding the attacker's key
	attackerHits *hitCounter

	victimMu sync.Mutex
	victim   *http.Client // a browser signed in through st, for cross-site attacks

	chunks []cookiePair // a genuine session of a user in 200 groups, in chunks
	other  []cookiePair // another genuine session of the same user
}

const (
	apiAudience = "api://entraauth-attacks"
	apiClientID = "5c4d3e2f-0000-4000-8000-0000000a77ac"
	attackerKid = "attacker-kid"
	evilHost    = "evil.example"
	otherGUID   = "00000000-1111-2222-3333-444444444444"
	// otherClientID is another app registration of the same tenant.
	otherClientID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
)

type cookiePair struct{ name, value string }

type hitCounter struct {
	mu sync.Mutex
	n  int
}

func (c *hitCounter) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *hitCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// tokenBox hands a token from the tenant's handler to the test goroutine.
type tokenBox struct {
	mu  sync.Mutex
	tok string
}

func (b *tokenBox) set(s string) {
	b.mu.Lock()
	b.tok = s
	b.mu.Unlock()
}

func (b *tokenBox) get() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tok
}

func TestAttacksAreRefused(t *testing.T) {
	a := newArena(t)
	for _, at := range attacks() {
		at := at
		t.Run(at.name, func(t *testing.T) {
			at.run(t, a)
		})
	}
}

// attacks is the table: one row per attack.
func attacks() []attack {
	list := []attack{
		// ID token forgery, delivered through a real sign-in: the tenant
		// hands out the forged token at its token endpoint.
		{"an ID token with alg none", func(t *testing.T, a *arena) {
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				tok, _ := jwt.SignWithHeader(nil, map[string]interface{}{"alg": "none", "typ": "JWT"}, claims)
				return tok
			})
		}},
		{"an ID token with alg None and the tenant's kid", func(t *testing.T, a *arena) {
			kid := a.st.tenant.KeyID()
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				tok, _ := jwt.SignWithHeader(nil, map[string]interface{}{"alg": "None", "kid": kid, "typ": "JWT"}, claims)
				return tok
			})
		}},
		{"an ID token with alg none but a genuine RSA signature", func(t *testing.T, a *arena) {
			kid := a.st.tenant.KeyID()
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				return a.st.tenant.SignTokenWithHeader(map[string]interface{}{"alg": "none", "kid": kid, "typ": "JWT"}, claims)
			})
		}},
		{"an HS256 ID token keyed with the tenant's public key as PEM", func(t *testing.T, a *arena) {
			kid := a.st.tenant.KeyID()
			der, err := x509.MarshalPKIXPublicKey(a.tenantKey(t))
			if err != nil {
				t.Fatal(err)
			}
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				return hmacToken(map[string]interface{}{"alg": "HS256", "kid": kid, "typ": "JWT"}, claims, secret)
			})
		}},
		{"an HS256 ID token keyed with the tenant's public key as PKCS #1", func(t *testing.T, a *arena) {
			kid := a.st.tenant.KeyID()
			secret := x509.MarshalPKCS1PublicKey(a.tenantKey(t))
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				return hmacToken(map[string]interface{}{"alg": "HS256", "kid": kid, "typ": "JWT"}, claims, secret)
			})
		}},
		{"an ID token signed by the attacker under an unknown kid (one key refetch per sign-in at most)", func(t *testing.T, a *arena) {
			// The token endpoint vouches for its ID tokens, so an unknown
			// kid there refetches the keys (an emergency rotation must not
			// fail sign-ins); each such fetch costs a whole sign-in.
			before := a.st.tenant.Hits(entraidtest.JWKS)
			for i := 0; i < 3; i++ {
				a.refuseForgedToken(t, func(claims map[string]interface{}) string {
					tok, _ := jwt.Sign(a.attacker, attackerKid, claims)
					return tok
				})
			}
			if got := a.st.tenant.Hits(entraidtest.JWKS) - before; got > 3 {
				t.Errorf("3 sign-ins with an unknown kid caused %d JWKS fetches, want at most 3", got)
			}
		}},
		{"bearer tokens under unknown kids refetch the keys once at most", func(t *testing.T, a *arena) {
			before := a.st.tenant.Hits(entraidtest.JWKS)
			for i := 0; i < 20; i++ {
				tok, _ := jwt.Sign(a.attacker, fmt.Sprintf("%s-%d", attackerKid, i), a.apiClaims())
				a.bearer(t, tok, http.StatusUnauthorized)
			}
			if got := a.st.tenant.Hits(entraidtest.JWKS) - before; got > 1 {
				t.Errorf("20 bearer tokens with unknown kids caused %d JWKS fetches, want at most 1", got)
			}
		}},
		{"an ID token signed by the attacker under the tenant's kid", func(t *testing.T, a *arena) {
			kid := a.st.tenant.KeyID()
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				tok, _ := jwt.Sign(a.attacker, kid, claims)
				return tok
			})
		}},
		{"an ID token whose jku header points at the attacker's keys", func(t *testing.T, a *arena) {
			a.refuseInjectedKey(t, map[string]interface{}{"jku": a.attackerJWKS})
		}},
		{"an ID token whose x5u header points at the attacker's certificate", func(t *testing.T, a *arena) {
			a.refuseInjectedKey(t, map[string]interface{}{"x5u": a.attackerJWKS})
		}},
		{"an ID token embedding the attacker's key in a jwk header", func(t *testing.T, a *arena) {
			var set struct {
				Keys []map[string]interface{} `json:"keys"`
			}
			if err := json.Unmarshal(jwt.MarshalJWKS(jwt.KeySet{attackerKid: &a.attacker.PublicKey}), &set); err != nil {
				t.Fatal(err)
			}
			a.refuseInjectedKey(t, map[string]interface{}{"jwk": set.Keys[0]})
		}},
		{"an ID token whose kid is a file path", func(t *testing.T, a *arena) {
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				tok, _ := jwt.Sign(a.attacker, "../../../../../../dev/null", claims)
				return tok
			})
		}},
		{"a Microsoft Graph access token (nonce header) in place of the ID token", func(t *testing.T, a *arena) {
			kid := a.st.tenant.KeyID()
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				return a.st.tenant.SignTokenWithHeader(map[string]interface{}{"alg": "RS256", "kid": kid, "typ": "JWT", "nonce": "Zm9v"}, claims)
			})
		}},
		{"an ID token with a crit header", func(t *testing.T, a *arena) {
			kid := a.st.tenant.KeyID()
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				return a.st.tenant.SignTokenWithHeader(map[string]interface{}{"alg": "RS256", "kid": kid, "typ": "JWT", "crit": []string{"exp"}}, claims)
			})
		}},
		{"an ID token whose signature is stripped", func(t *testing.T, a *arena) {
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				tok := a.st.tenant.SignToken(claims)
				return tok[:strings.LastIndex(tok, ".")+1]
			})
		}},
		{"an ID token carrying the signature of another token", func(t *testing.T, a *arena) {
			a.refuseForgedToken(t, func(claims map[string]interface{}) string {
				genuine := a.st.tenant.SignToken(map[string]interface{}{"sub": "someone else"})
				claims["oid"] = otherGUID
				tok := a.st.tenant.SignToken(claims)
				return tok[:strings.LastIndex(tok, ".")] + genuine[strings.LastIndex(genuine, "."):]
			})
		}},

		// Genuinely signed tokens whose claims are wrong for this login.
		claimsAttack("a token for another audience", func(c map[string]interface{}) { c["aud"] = otherGUID }),
		claimsAttack("a token for several audiences without azp", func(c map[string]interface{}) { c["aud"] = []string{testClientID, otherGUID} }),
		claimsAttack("a token authorized for another app (azp)", func(c map[string]interface{}) { c["azp"] = otherGUID }),
		claimsAttack("a token of another tenant", func(c map[string]interface{}) { c["tid"] = otherGUID }),
		claimsAttack("a token of another tenant with its matching issuer", func(c map[string]interface{}) {
			c["tid"] = otherGUID
			c["iss"] = strings.Replace(c["iss"].(string), testTenantID, otherGUID, 1)
		}),
		claimsAttack("a token from another issuer", func(c map[string]interface{}) {
			c["iss"] = "https://login.microsoftonline.com/" + testTenantID + "/v2.0"
		}),
		claimsAttack("a token from the v1 issuer of the tenant", func(c map[string]interface{}) {
			c["iss"] = "https://sts.windows.net/" + testTenantID + "/"
		}),
		claimsAttack("a token whose issuer has a trailing slash", func(c map[string]interface{}) { c["iss"] = c["iss"].(string) + "/" }),
		claimsAttack("an expired token", func(c map[string]interface{}) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		claimsAttack("a token not yet valid", func(c map[string]interface{}) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		claimsAttack("a token issued in the future", func(c map[string]interface{}) {
			c["iat"] = time.Now().Add(time.Hour).Unix()
			c["nbf"] = c["iat"]
		}),
		claimsAttack("a token whose exp is a string", func(c map[string]interface{}) { c["exp"] = "9999999999" }),
		claimsAttack("a token without a nonce", func(c map[string]interface{}) { delete(c, "nonce") }),
		claimsAttack("a token without an object ID", func(c map[string]interface{}) { delete(c, "oid") }),
		claimsAttack("a v1.0 token", func(c map[string]interface{}) { c["ver"] = "1.0" }),
		claimsAttack("a token larger than 16 KB", func(c map[string]interface{}) { c["name"] = strings.Repeat("A", 20<<10) }),

		// Replays and injections across logins and browsers.
		{"nonce replay: the ID token of login A presented for login B", func(t *testing.T, a *arena) {
			box := &tokenBox{}
			a.st.tenant.SetIDTokenHook(func(claims map[string]interface{}) string {
				tok := a.st.tenant.SignToken(claims)
				box.set(tok)
				return tok
			})
			first := noRedirects(a.st.browser())
			resp, _ := navigate(t, first, a.loginCallback(t, first, "/"))
			a.st.tenant.SetIDTokenHook(nil)
			if resp.StatusCode != http.StatusFound || !hasSession(resp) {
				t.Fatalf("login A: %d, want a session", resp.StatusCode)
			}
			replayed := box.get()
			a.refuseForgedToken(t, func(claims map[string]interface{}) string { return replayed })
		}},
		{"state replay: a finished callback sent again with its login cookie", func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			callback := a.loginCallback(t, c, "/")
			u, _ := url.Parse(callback)
			kept := c.Jar.Cookies(u)
			if resp, _ := navigate(t, c, callback); resp.StatusCode != http.StatusFound || !hasSession(resp) {
				t.Fatalf("first use: %d", resp.StatusCode)
			}
			// Whoever captured the callback URL and the login cookie, in a
			// browser without the session that the first use created.
			tokens := a.st.tenant.Hits(entraidtest.Token)
			replay := noRedirects(a.st.browser())
			replay.Jar.SetCookies(u, kept)
			resp, body := navigate(t, replay, callback)
			refusedSignIn(t, resp, body, http.StatusBadRequest, "invalid_state")
			if a.st.tenant.Hits(entraidtest.Token) != tokens {
				t.Fatal("the replayed code was sent to the token endpoint")
			}
		}},
		{"state from another browser: the victim's callback opened by the attacker", func(t *testing.T, a *arena) {
			callback := a.loginCallback(t, noRedirects(a.st.browser()), "/")
			resp, body := navigate(t, noRedirects(a.st.browser()), callback)
			refusedSignIn(t, resp, body, http.StatusBadRequest, "invalid_state")
		}},
		{"login CSRF: the attacker's own callback opened in the victim's browser", func(t *testing.T, a *arena) {
			attackerCallback := a.loginCallback(t, noRedirects(a.st.browser()), "/")
			victim := noRedirects(a.st.browser())
			a.loginCallback(t, victim, "/") // the victim has a sign-in of its own in flight
			resp, body := navigate(t, victim, attackerCallback)
			refusedSignIn(t, resp, body, http.StatusBadRequest, "invalid_state")
		}},
		{"login CSRF: a sibling subdomain plants the attacker's own login-state cookie and sends the victim to the attacker's callback", func(t *testing.T, a *arena) {
			attacker := noRedirects(a.st.browser())
			callback, _ := url.Parse(a.loginCallback(t, attacker, "/"))
			victim := noRedirects(a.st.browser())
			for _, ck := range attacker.Jar.Cookies(callback) {
				// Cookies reach the server as name=value alone: one set
				// for the parent domain arrives like the site's own.
				if strings.HasPrefix(ck.Name, "entraauth_main_login_") {
					victim.Jar.SetCookies(callback, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/portals/main/oauth2/callback"}})
				}
			}
			resp, body := navigate(t, victim, callback.String())
			refusedSignIn(t, resp, body, http.StatusBadRequest, "invalid_state")
		}},
		{"a state no browser was given", func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			a.loginCallback(t, c, "/")
			resp, body := navigate(t, c, a.st.server.URL+"/portals/main/oauth2/callback?code=abc&state="+randomToken())
			refusedSignIn(t, resp, body, http.StatusBadRequest, "invalid_state")
		}},
		{"a login cookie renamed to carry another state", func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			u, _ := url.Parse(a.loginCallback(t, c, "/"))
			other := randomToken()
			for _, ck := range c.Jar.Cookies(u) {
				if strings.HasPrefix(ck.Name, "entraauth_main_login_") {
					c.Jar.SetCookies(u, []*http.Cookie{{Name: "entraauth_main_login_" + other[:12], Value: ck.Value, Path: "/portals/main/oauth2/callback"}})
				}
			}
			q := u.Query()
			q.Set("state", other)
			u.RawQuery = q.Encode()
			resp, body := navigate(t, c, u.String())
			refusedSignIn(t, resp, body, http.StatusBadRequest, "invalid_state")
		}},
		{"a login state older than 10 minutes", func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			callback := a.loginCallback(t, c, "/")
			setClock(a.st.mw, func() time.Time { return time.Now().Add(loginLifetime + time.Minute) })
			defer setClock(a.st.mw, time.Now)
			resp, body := navigate(t, c, callback)
			refusedSignIn(t, resp, body, http.StatusBadRequest, "invalid_state")
		}},
		{"code injection: a code minted for the attacker's login in the victim's callback (PKCE)", func(t *testing.T, a *arena) {
			attacker, _ := url.Parse(a.loginCallback(t, noRedirects(a.st.browser()), "/"))
			victim := noRedirects(a.st.browser())
			injected, _ := url.Parse(a.loginCallback(t, victim, "/"))
			q := injected.Query()
			q.Set("code", attacker.Query().Get("code"))
			injected.RawQuery = q.Encode()
			resp, body := navigate(t, victim, injected.String())
			// The tenant checks the victim's verifier against the
			// attacker's challenge: AADSTS501481.
			refusedSignIn(t, resp, body, http.StatusBadGateway, "AADSTS501481")
		}},
		{"a callback sent as a POST form", func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			u, _ := url.Parse(a.loginCallback(t, c, "/"))
			resp, err := c.PostForm(a.st.server.URL+u.Path, u.Query())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			refusedSignIn(t, resp, string(body), http.StatusMethodNotAllowed, "method_not_allowed")
		}},

		// Bearer tokens of API clients.
		{"a bearer token with alg none", func(t *testing.T, a *arena) {
			tok, _ := jwt.SignWithHeader(nil, map[string]interface{}{"alg": "none", "typ": "JWT"}, a.apiClaims())
			a.bearer(t, tok, http.StatusUnauthorized)
		}},
		{"an HS256 bearer token keyed with the tenant's public key", func(t *testing.T, a *arena) {
			der, _ := x509.MarshalPKIXPublicKey(a.tenantKey(t))
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			a.bearer(t, hmacToken(map[string]interface{}{"alg": "HS256", "kid": a.st.tenant.KeyID(), "typ": "JWT"}, a.apiClaims(), secret), http.StatusUnauthorized)
		}},
		{"a bearer token signed by the attacker", func(t *testing.T, a *arena) {
			tok, _ := jwt.Sign(a.attacker, a.st.tenant.KeyID(), a.apiClaims())
			a.bearer(t, tok, http.StatusUnauthorized)
		}},
		{"a bearer token whose jku points at the attacker's keys", func(t *testing.T, a *arena) {
			before := a.attackerHits.get()
			tok, _ := jwt.SignWithHeader(a.attacker, map[string]interface{}{"alg": "RS256", "kid": attackerKid, "jku": a.attackerJWKS}, a.apiClaims())
			a.bearer(t, tok, http.StatusUnauthorized)
			if a.attackerHits.get() != before {
				t.Fatal("the plugin fetched the attacker's key URL")
			}
		}},
		{"an ID token presented as a bearer token", func(t *testing.T, a *arena) {
			a.bearer(t, a.st.tenant.SignToken(a.st.tenant.IDTokenClaims(alice, "nonce")), http.StatusUnauthorized)
		}},
		{"an ID token presented as a bearer token to an API whose audience is the app's client ID", func(t *testing.T, a *arena) {
			// An ID token has the app's client ID as audience, the user's
			// roles and no scope: it must not pass for an access token,
			// let alone skip requiredScopes as an app-only one.
			a.bearerTo(t, a.apiOfApp, a.apiOfAppSeen, a.st.tenant.SignToken(a.st.tenant.IDTokenClaims(alice, "a-nonce")), http.StatusUnauthorized)
		}},
		{"a bearer token for another API", func(t *testing.T, a *arena) {
			c := a.apiClaims()
			c["aud"] = "api://another-api"
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
		}},
		{"a v1.0 bearer token of another tenant, its issuer and tid both the attacker's", func(t *testing.T, a *arena) {
			// Entra ID signs every tenant's tokens with the same keys: a
			// token of the attacker's own tenant for an API of the same
			// name verifies. v1.0 tokens are accepted by default.
			c := a.apiClaims()
			c["tid"] = otherGUID
			c["iss"] = "https://sts.windows.net/" + otherGUID + "/"
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
		}},
		{"a bearer token for an API whose URI extends this API's", func(t *testing.T, a *arena) {
			// A trailing slash is tolerated (Entra ID writes v1.0 URIs
			// either way); nothing else makes a URI match.
			for _, aud := range []string{apiAudience + "/admin", apiAudience + "-evil", apiAudience + "//"} {
				c := a.apiClaims()
				c["aud"] = aud
				a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
			}
		}},
		{"an app-only bearer token carrying only a role meant for people", func(t *testing.T, a *arena) {
			// apiOfApp lets people with Reader (allowedRoles) in, and
			// applications with Items.Sync (apiAppRoles). An application
			// granted Reader must not pass as if it were a person.
			c := a.st.tenant.AppAccessTokenClaims(otherGUID, appAsAPI, []string{"Reader"})
			a.bearerTo(t, a.apiOfApp, a.apiOfAppSeen, a.st.tenant.SignToken(c), http.StatusForbidden)
		}},
		{"a delegated bearer token of a user holding only the applications' role", func(t *testing.T, a *arena) {
			u := alice
			u.Roles = []string{"Items.Sync"}
			c := a.st.tenant.APIAccessTokenClaims(u, appAsAPI, "Items.Read")
			a.bearerTo(t, a.apiOfApp, a.apiOfAppSeen, a.st.tenant.SignToken(c), http.StatusForbidden)
		}},
		{"a user's bearer token without scp and idtyp, holding only the applications' role", func(t *testing.T, a *arena) {
			// Without idtyp and scp, a token is an application's only when
			// sub equals oid; a user's sub is pairwise (per app) and never
			// does. Taken for an app's, it would pass on Items.Sync and skip
			// requiredScopes and allowedRoles.
			u := alice
			u.Roles = []string{"Items.Sync"}
			c := a.st.tenant.APIAccessTokenClaims(u, appAsAPI, "")
			delete(c, "scp")
			delete(c, "idtyp")
			a.bearerTo(t, a.apiOfApp, a.apiOfAppSeen, a.st.tenant.SignToken(c), http.StatusForbidden)
		}},
		{"a bearer token for this API and another", func(t *testing.T, a *arena) {
			c := a.apiClaims()
			c["aud"] = []string{apiAudience, "api://another-api"}
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
		}},
		{"an expired bearer token", func(t *testing.T, a *arena) {
			c := a.apiClaims()
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
		}},
		{"a bearer token of another tenant", func(t *testing.T, a *arena) {
			c := a.apiClaims()
			c["tid"] = otherGUID
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
		}},
		{"a bearer token larger than 16 KB", func(t *testing.T, a *arena) {
			c := a.apiClaims()
			c["name"] = strings.Repeat("A", 20<<10)
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
		}},
		{"a bearer token whose issuer carries CR LF and quotes into WWW-Authenticate", func(t *testing.T, a *arena) {
			c := a.apiClaims()
			c["iss"] = "https://evil.example/\"\r\nSet-Cookie: x=1\r\n\r\n<h1>"
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusUnauthorized)
		}},
		{"CR LF in the claims of a valid bearer token reaching identity headers", func(t *testing.T, a *arena) {
			c := a.apiClaims()
			c["name"] = "Alice\r\nX-Injected: yes"
			c["roles"] = []string{"Reader\nX-Role: Admin"}
			a.bearer(t, a.st.tenant.SignToken(c), http.StatusOK)
			for k, vs := range *a.apiSeen {
				if strings.EqualFold(k, "X-Injected") || strings.EqualFold(k, "X-Role") || strings.ContainsAny(strings.Join(vs, ""), "\r\n\x00") {
					t.Errorf("upstream got %s = %q", k, vs)
				}
			}
		}},

		// Identity header spoofing.
		{"spoofed identity headers in odd casings and duplicates from a signed-in user, through authorize and from the cache", func(t *testing.T, a *arena) {
			cookie := sessionCookie(t, a.guarded, aliceSession())
			a.serveGuardedTwice(t, cookie, func() *http.Request {
				r := httptest.NewRequest("GET", "https://app.example.com/", nil)
				r.Header.Set("Cookie", cookie)
				r.Header["x-forwarded-user"] = []string{"mallory"}
				r.Header["X-FORWARDED-USER"] = []string{"mallory"}
				r.Header["X-Forwarded-User"] = []string{"mallory", "eve"}
				r.Header["x-Forwarded-groups"] = []string{"admins"}
				r.Header["X-FORWARDED-ROLES"] = []string{"Admin", "Owner"}
				r.Header["x-forwarded-email"] = []string{"ceo@contoso.example"}
				r.Header["X-Forwarded-Preferred-USERNAME"] = []string{"ceo@contoso.example"}
				r.Header["X-forwarded-name"] = []string{"CEO"}
				return r
			}, alice.OID)
		}},
		{"spoofed identity headers spelt with underscores from a signed-in user, through authorize and from the cache", func(t *testing.T, a *arena) {
			cookie := sessionCookie(t, a.guarded, aliceSession())
			a.serveGuardedTwice(t, cookie, func() *http.Request {
				r := httptest.NewRequest("GET", "https://app.example.com/", nil)
				r.Header.Set("Cookie", cookie)
				r.Header.Set("Accept", "text/html")
				// As Go's servers hand them over (canonical, '_' kept),
				// and raw.
				r.Header["X_forwarded_user"] = []string{"mallory"}
				r.Header["X-Forwarded_email"] = []string{"ceo@contoso.example"}
				r.Header["X_forwarded_preferred_username"] = []string{"ceo@contoso.example"}
				r.Header["x_forwarded_roles"] = []string{"Admin"}
				return r
			}, alice.OID)
		}},
		{"spoofed identity headers on an excluded path", func(t *testing.T, a *arena) {
			r := httptest.NewRequest("GET", "https://app.example.com/public/x", nil)
			r.Header["x-forwarded-user"] = []string{"mallory"}
			r.Header["X-Forwarded-User"] = []string{"mallory", "eve"}
			r.Header["X-FORWARDED-ROLES"] = []string{"Admin"}
			a.serveGuarded(t, r, http.StatusOK)
			a.checkIdentityHeaders(t, "")
		}},
		{"spoofed identity headers spelt with underscores (CGI servers read them as dashes)", func(t *testing.T, a *arena) {
			r := httptest.NewRequest("GET", "https://app.example.com/public/x", nil)
			r.Header["X_Forwarded_User"] = []string{"mallory"}
			r.Header["x_forwarded_roles"] = []string{"Admin"}
			r.Header["X-Forwarded_Email"] = []string{"ceo@contoso.example"}
			a.serveGuarded(t, r, http.StatusOK)
			a.checkIdentityHeaders(t, "")
		}},
		{"spoofed identity headers spelt with dots or other separators from a signed-in user, through authorize and from the cache", func(t *testing.T, a *arena) {
			// lighttpd, Apache 2.2 and other CGI gateways turn every
			// character but letters and digits into '_', as they do '-'.
			cookie := sessionCookie(t, a.guarded, aliceSession())
			a.serveGuardedTwice(t, cookie, func() *http.Request {
				r := httptest.NewRequest("GET", "https://app.example.com/", nil)
				r.Header.Set("Cookie", cookie)
				r.Header.Set("Accept", "text/html")
				r.Header["X.Forwarded.User"] = []string{"mallory"}
				r.Header["X-Forwarded.Roles"] = []string{"Admin"}
				r.Header["x.forwarded_groups"] = []string{"admins"}
				r.Header["X~Forwarded~Email"] = []string{"ceo@contoso.example"}
				r.Header["X!Forwarded+Preferred|Username"] = []string{"ceo@contoso.example"}
				return r
			}, alice.OID)
		}},
		{"spoofed identity headers spelt with dots on an excluded path", func(t *testing.T, a *arena) {
			r := httptest.NewRequest("GET", "https://app.example.com/public/x", nil)
			r.Header["X.Forwarded.User"] = []string{"mallory"}
			r.Header["X.FORWARDED.ROLES"] = []string{"Admin"}
			r.Header["X-Forwarded^Email"] = []string{"ceo@contoso.example"}
			a.serveGuarded(t, r, http.StatusOK)
			a.checkIdentityHeaders(t, "")
		}},
		{"identity headers sent as request trailers, through authorize and from the cache", func(t *testing.T, a *arena) {
			// Upstreams that read trailers with the headers (or a proxy
			// that merges them) would take them for the plugin's.
			cookie := sessionCookie(t, a.guarded, aliceSession())
			a.serveGuardedTwice(t, cookie, func() *http.Request {
				r := httptest.NewRequest("POST", "https://app.example.com/upload", strings.NewReader("x"))
				r.Header.Set("Cookie", cookie)
				r.Header.Set("Accept", "application/json")
				r.Trailer = http.Header{"X-Forwarded-User": {"mallory"}, "X.Forwarded.Roles": {"Admin"}, "X-Checksum": {"1"}}
				return r
			}, alice.OID)
			r := httptest.NewRequest("POST", "https://app.example.com/public/upload", strings.NewReader("x"))
			r.Trailer = http.Header{"X_Forwarded_User": {"mallory"}}
			a.serveGuarded(t, r, http.StatusOK)
			a.checkIdentityHeaders(t, "")
		}},
		{"an oversized spoofed identity header", func(t *testing.T, a *arena) {
			r := httptest.NewRequest("GET", "https://app.example.com/public/x", nil)
			r.Header.Set("X-Forwarded-User", strings.Repeat("m", 1<<20))
			a.serveGuarded(t, r, http.StatusOK)
			a.checkIdentityHeaders(t, "")
		}},
		{"spoofed identity headers sent twice over the wire by a signed-in browser", func(t *testing.T, a *arena) {
			c := a.victimBrowser(t)
			req, _ := http.NewRequest("GET", a.st.server.URL+"/wire", nil)
			req.Header.Set("Accept", "text/html")
			req.Header["x-forwarded-user"] = []string{"mallory"}
			req.Header.Add("X-Forwarded-User", "eve")
			req.Header["X-FORWARDED-GROUPS"] = []string{"admins", "owners"}
			a.drainUpstream()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			checkIdentityHeaderSet(t, a.nextUpstream(t), alice.OID)
		}},
		{"spoofed App Service headers (X-MS-CLIENT-PRINCIPAL*, X-MS-TOKEN-*) in every spelling, without appServiceHeaders: through authorize, from the cache, on an excluded path", func(t *testing.T, a *arena) {
			cookie := sessionCookie(t, a.guarded, aliceSession())
			spoofed := func(path string) *http.Request {
				r := httptest.NewRequest("GET", "https://app.example.com"+path, nil)
				r.Header.Set("Cookie", cookie)
				r.Header["X-MS-CLIENT-PRINCIPAL"] = []string{"eyJhdXRoX3R5cCI6ImFhZCJ9"}
				r.Header["x-ms-client-principal-id"] = []string{"mallory"}
				r.Header["X_MS_CLIENT_PRINCIPAL_NAME"] = []string{"ceo@contoso.example"}
				r.Header["X-Ms-Client-Principal-Idp"] = []string{"aad"}
				r.Header["X-MS-TOKEN-AAD-ACCESS-TOKEN"] = []string{"forged"}
				r.Header["x_ms_token_aad_id_token"] = []string{"forged"}
				return r
			}
			for _, path := range []string{"/", "/", "/public/x"} {
				a.serveGuarded(t, spoofed(path), http.StatusOK)
				for k, vs := range *a.upstream {
					if isAppServiceHeader(http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))) {
						t.Errorf("%s: upstream got %s = %.40q", path, k, vs)
					}
				}
			}
		}},

		// CR/LF, control characters and markup in claims.
		{"CR LF and control characters in claims reaching identity headers", func(t *testing.T, a *arena) {
			a.st.tenant.SetClaimsHook(func(c map[string]interface{}) {
				c["name"] = "Alice\r\nX-Injected: yes"
				c["email"] = "alice@contoso.example\x00\x1b[31m"
				c["preferred_username"] = "alice\n@contoso.example\x7f"
				c["roles"] = []string{"Reader\r\nX-Role: Admin", "Writer\x00"}
				c["groups"] = []string{alice.Groups[0] + "\nX-Group: admins"}
			})
			defer a.st.tenant.SetClaimsHook(nil)
			h := a.signedInUpstream(t, "/crlf")
			for k, vs := range h {
				if strings.EqualFold(k, "X-Injected") || strings.EqualFold(k, "X-Role") || strings.EqualFold(k, "X-Group") {
					t.Errorf("header %s was injected through a claim", k)
				}
				for _, v := range vs {
					for i := 0; i < len(v); i++ {
						if v[i] < 0x20 || v[i] == 0x7f {
							t.Errorf("header %s = %q carries a control character", k, v)
							break
						}
					}
				}
			}
			if h.Get("X-Forwarded-User") != alice.OID {
				t.Errorf("X-Forwarded-User = %q", h.Get("X-Forwarded-User"))
			}
		}},
		{"a script in a claim reaches pages escaped", func(t *testing.T, a *arena) {
			a.st.tenant.SetClaimsHook(func(c map[string]interface{}) { c["name"] = `<script>alert("pwned")</script>` })
			defer a.st.tenant.SetClaimsHook(nil)
			c := a.st.browser()
			a.signedInUpstreamWith(t, c, "/markup")
			_, body := navigate(t, c, a.st.server.URL+"/portals/main/profile")
			if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
				t.Fatalf("profile page does not escape the claim: %q", body)
			}
		}},
		{"CR LF in Entra's error description", func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			u, _ := url.Parse(a.loginCallback(t, c, "/"))
			q := url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied\r\nSet-Cookie: x=1"},
				"error_description": {"<img src=x onerror=alert(1)>\r\nSet-Cookie: entraauth_main=forged"}}
			resp, body := navigate(t, c, a.st.server.URL+u.Path+"?"+q.Encode())
			if resp.StatusCode < 400 || hasSession(resp) || strings.Contains(body, "<img") {
				t.Fatalf("got %d, session %v, body %q", resp.StatusCode, hasSession(resp), body)
			}
			for _, v := range resp.Header.Values("Set-Cookie") {
				if strings.Contains(v, "forged") || strings.HasPrefix(v, "x=") {
					t.Fatalf("a cookie was injected: %q", v)
				}
			}
		}},

		// A session belongs to the app, tenant and lifetime that made it.
		{"a session of another app registration sharing the secret and cookie name", func(t *testing.T, a *arena) {
			cookie := sessionCookie(t, a.guarded, aliceSession())
			// The session passes where it was issued, and is cached there.
			r := httptest.NewRequest("GET", "https://a.example.com/private", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Cookie", cookie)
			a.serveGuarded(t, r, http.StatusOK)

			// The same rules, headers and lifetimes as the app that issued
			// it: app B's fast path consults the session cache, where only
			// the app binding keeps A's cached outcome from B.
			appB, seen := guard(t, func(c *Config) {
				c.MicrosoftEntraID.ClientID = otherClientID
				c.MicrosoftEntraID.AuthorityHost = a.st.tenant.URL
			})
			api := httptest.NewRequest("GET", "https://b.example.com/private", nil)
			api.Header.Set("Accept", "application/json")
			api.Header.Set("Cookie", cookie)
			w := httptest.NewRecorder()
			appB.ServeHTTP(w, api)
			if w.Code != http.StatusUnauthorized || *seen != nil {
				t.Fatalf("an API call to app B with app A's session: %d (upstream reached: %v), want 401", w.Code, *seen != nil)
			}
			nav := httptest.NewRequest("GET", "https://b.example.com/private", nil)
			nav.Header.Set("Accept", "text/html")
			nav.Header.Set("Cookie", cookie)
			w = httptest.NewRecorder()
			appB.ServeHTTP(w, nav)
			loc, _ := url.Parse(w.Header().Get("Location"))
			if w.Code != http.StatusFound || loc == nil || loc.Query().Get("client_id") != otherClientID || *seen != nil {
				t.Fatalf("a navigation to app B with app A's session: %d to %q, want a sign-in with app B's client ID", w.Code, w.Header().Get("Location"))
			}
		}},
		{"a session of another cloud's app sharing the secret and cookie name", func(t *testing.T, a *arena) {
			cookie := sessionCookie(t, a.guarded, aliceSession())
			other, seen := guard(t, func(c *Config) { c.MicrosoftEntraID.AuthorityHost = "https://login.microsoftonline.us" })
			r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Cookie", cookie)
			w := httptest.NewRecorder()
			other.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized || *seen != nil {
				t.Fatalf("a session of the public cloud at a US Government app: %d, want 401", w.Code)
			}
		}},
		{"a session of another tenant at an app configured with a domain tenantID", func(t *testing.T, a *arena) {
			byDomain, seen := guard(t, func(c *Config) {
				c.MicrosoftEntraID.TenantID = a.st.tenant.Domain
				c.MicrosoftEntraID.AuthorityHost = a.st.tenant.URL
				c.MicrosoftEntraID.ClientSecret = a.st.tenant.ClientSecret
			})
			own := aliceSession()
			own.TID = a.st.tenant.TenantID
			foreign := aliceSession()
			foreign.TID = otherGUID
			for _, tc := range []struct {
				s    *session.Session
				want int
			}{{own, http.StatusOK}, {foreign, http.StatusUnauthorized}} {
				r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
				r.Header.Set("Accept", "application/json")
				r.Header.Set("Cookie", sessionCookie(t, byDomain, tc.s))
				*seen = nil
				w := httptest.NewRecorder()
				byDomain.ServeHTTP(w, r)
				if w.Code != tc.want {
					t.Fatalf("a session of tenant %s at the app of %s: %d, want %d", tc.s.TID, a.st.tenant.Domain, w.Code, tc.want)
				}
			}
		}},
		{"a session of a multi-tenant app at a single-tenant app of the same client ID", func(t *testing.T, a *arena) {
			multi, _ := guard(t, func(c *Config) {
				c.MicrosoftEntraID.TenantID = "organizations"
				c.MicrosoftEntraID.AllowedTenants = []string{testTenantID, otherGUID}
			})
			s := aliceSession()
			s.TID = otherGUID
			r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Cookie", sessionCookie(t, multi, s))
			a.serveGuarded(t, r, http.StatusUnauthorized)
		}},
		{"a session older than this router's lifetime, sealed by a sibling with a longer one", func(t *testing.T, a *arena) {
			long, _ := guard(t, func(c *Config) { c.Session.Lifetime = "720h" })
			short, seen := guard(t, func(c *Config) { c.Session.Lifetime = "1h" })
			s := aliceSession()
			s.IssuedAt = time.Now().Add(-2 * time.Hour).Unix()
			s.Expires = time.Now().Add(700 * time.Hour).Unix()
			cookie := sessionCookie(t, long, s)
			for _, tc := range []struct {
				m    *Middleware
				want int
			}{{long, http.StatusOK}, {short, http.StatusUnauthorized}} {
				r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
				r.Header.Set("Accept", "application/json")
				r.Header.Set("Cookie", cookie)
				*seen = nil
				w := httptest.NewRecorder()
				tc.m.ServeHTTP(w, r)
				if w.Code != tc.want {
					t.Fatalf("lifetime %s: %d, want %d", tc.m.lifetime, w.Code, tc.want)
				}
			}
		}},
		{"a sibling's long session expires at this router's lifetime on the cached path too", func(t *testing.T, a *arena) {
			long, _ := guard(t, func(c *Config) { c.Session.Lifetime = "720h" })
			short, seen := guard(t, func(c *Config) { c.Session.Lifetime = "1h" })
			start := time.Now()
			s := aliceSession()
			s.IssuedAt = start.Add(-30 * time.Minute).Unix()
			s.Expires = start.Add(700 * time.Hour).Unix()
			cookie := sessionCookie(t, long, s)
			for _, tc := range []struct {
				after time.Duration
				want  int
			}{{0, http.StatusOK}, {10 * time.Minute, http.StatusOK}, {31 * time.Minute, http.StatusUnauthorized}} {
				after := tc.after
				setClock(short, func() time.Time { return start.Add(after) })
				r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
				r.Header.Set("Accept", "application/json")
				r.Header.Set("Cookie", cookie)
				*seen = nil
				w := httptest.NewRecorder()
				short.ServeHTTP(w, r)
				if w.Code != tc.want {
					t.Fatalf("%s later: %d, want %d", tc.after, w.Code, tc.want)
				}
			}
		}},

		// Findings of the security review.
		{"attacker-written text on the callback with no sign-in in flight", func(t *testing.T, a *arena) {
			q := url.Values{"error": {"access_denied"}, "error_description": {"AADSTS50053: Your account is locked. Call +1 555 0100 to unlock it."}}
			resp, body := navigate(t, noRedirects(a.st.browser()), a.st.server.URL+"/portals/main/oauth2/callback?"+q.Encode())
			if strings.Contains(body, "555") || strings.Contains(body, "locked") || resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid_state") {
				t.Fatalf("got %d %.400q, want the sign-in-expired page without the attacker's text", resp.StatusCode, body)
			}
		}},
		{"attacker-written text on the callback with a forged state", func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			a.loginCallback(t, c, "/") // a sign-in is in flight, but under another state
			q := url.Values{"state": {strings.Repeat("A", tokenLength)}, "error": {"access_denied"}, "error_description": {"Your account is locked. Call +1 555 0100."}}
			resp, body := navigate(t, c, a.st.server.URL+"/portals/main/oauth2/callback?"+q.Encode())
			if strings.Contains(body, "555") || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("got %d %.400q, want the sign-in-expired page without the attacker's text", resp.StatusCode, body)
			}
		}},

		{"CR LF in a path forging a line of the log", func(t *testing.T, a *arena) {
			m, _ := guard(t, func(c *Config) { c.AllowedRoles = []string{"Nobody"} })
			logs := &lockedBuffer{}
			m.log = log.New(logs, "entraauth[rules]: ", 0)
			r := httptest.NewRequest("GET", "https://app.example.com/x%0D%0Aentraauth[rules]:%20access%20granted%20to%20mallory", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Cookie", sessionCookie(t, m, aliceSession()))
			w := httptest.NewRecorder()
			m.ServeHTTP(w, r)
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403", w.Code)
			}
			if lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n"); len(lines) != 1 || strings.ContainsRune(logs.String(), '\r') {
				t.Fatalf("one refusal logged as %d lines: %q", len(lines), logs)
			}
		}},
		// Oversized input.
		{"a claim over 8 KB does not become an identity header", func(t *testing.T, a *arena) {
			a.st.tenant.SetClaimsHook(func(c map[string]interface{}) { c["name"] = strings.Repeat("N", 9<<10) })
			defer a.st.tenant.SetClaimsHook(nil)
			h := a.signedInUpstream(t, "/big")
			if v := h.Get("X-Forwarded-Name"); v != "" {
				t.Errorf("an X-Forwarded-Name of %d bytes was sent", len(v))
			}
			if h.Get("X-Forwarded-User") != alice.OID {
				t.Errorf("X-Forwarded-User = %q, want the other headers kept", h.Get("X-Forwarded-User"))
			}
		}},
		{"a logout form over 8 KB", func(t *testing.T, a *arena) {
			checkSameOrigin(t, a.logoutTarget(t, strings.Repeat("/", 1<<20)), a.st.server.URL)
		}},

		// The signed-out page links back to where the user signed out:
		// never to another site, nor to another host than its own.
		{"a signed-out page's link back to the Referer of another site", func(t *testing.T, a *arena) {
			if got := a.signedOutLink(t, a.st.server.URL, "https://"+evilHost+"/phish"); got != "/" {
				t.Fatalf("the signed-out page links to %q, want /", got)
			}
		}},
		{"a signed-out page's link back to one of the portal's own pages", func(t *testing.T, a *arena) {
			if got := a.signedOutLink(t, a.st.server.URL, a.st.server.URL+"/portals/main/profile"); got != "/" {
				t.Fatalf("the signed-out page links to %q, want /", got)
			}
		}},
		{"a signed-out page's link back carried to another host", func(t *testing.T, a *arena) {
			back := a.st.server.URL + "/reports?year=2026"
			if got := a.signedOutLink(t, a.st.server.URL, back); got != back {
				t.Fatalf("on its own host the signed-out page links to %q, want %q", got, back)
			}
			if got := a.signedOutLink(t, "https://"+evilHost, back); got != "/" {
				t.Fatalf("on %s the signed-out page links to %q, want /", evilHost, got)
			}
		}},

		// Cross-site sign-out.
		crossSiteLogout("a sign-out posted from another site", map[string]string{"Origin": "https://" + evilHost}),
		crossSiteLogout("a sign-out posted from an opaque origin", map[string]string{"Origin": "null"}),
		crossSiteLogout("a sign-out posted with no Origin and no Sec-Fetch-Site", nil),
		crossSiteLogout("a sign-out posted by a cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}),
		crossSiteLogout("a sign-out posted from a sibling subdomain", map[string]string{"Sec-Fetch-Site": "same-site"}),
		crossSiteLogout("a sign-out posted from the same host over plain HTTP", map[string]string{"Origin": "http://" + "{host}"}),
		crossSiteLogout("a sign-out posted from the same host on another port", map[string]string{"Origin": "https://127.0.0.1:1"}),
		{"a sign-out by GET, as a link or an image would", func(t *testing.T, a *arena) {
			c := a.victimBrowser(t)
			req, _ := http.NewRequest("GET", a.st.server.URL+"/portals/main/logout?rd=/", nil)
			req.Header.Set("Sec-Fetch-Dest", "image")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for _, v := range resp.Header.Values("Set-Cookie") {
				if strings.HasPrefix(v, "entraauth_main=") {
					t.Fatalf("a GET touched the session cookie: %q", v)
				}
			}
			a.checkStillSignedIn(t)
		}},
	}

	// Paths an upstream may resolve outside an excluded prefix: IIS and
	// ASP.NET read a backslash as a slash, some servers decode %2F.
	for _, path := range []string{"/public/..%5Cadmin", "/public/..%5cadmin", "/public/%2e%2e%5Cadmin", "/public/..\\admin",
		"/public/a%2Fb", "/public%2Fadmin", "/public/%2F..%2Fadmin",
		// Servlet containers (Tomcat, Jetty, Spring) drop a segment's ";..."
		// part and serve /admin; Traefik leaves "..;" alone.
		"/public/..;/admin", "/public/..;jsessionid=x/admin", "/public/%2e%2e;/admin", "/public/..%3b/admin",
		"/public/..%3B/admin", "/public/.;/..;/admin", "/public/x;a=b/../../admin",
		// An upstream that decodes twice reads these as /admin.
		"/public/%252e%252e/admin", "/public/%252e%252e%252fadmin", "/public/%25%32%65%25%32%65/admin"} {
		path := path
		list = append(list, attack{"a path that leaves an excluded prefix with " + path, func(t *testing.T, a *arena) {
			r := httptest.NewRequest("GET", "https://app.example.com"+path, nil)
			r.Header.Set("Accept", "application/json")
			a.serveGuarded(t, r, http.StatusUnauthorized)
		}})
	}

	// Open redirects after sign-in: the return URL comes from the path the
	// browser asked for.
	for _, path := range []string{"//" + evilHost + "/", "///" + evilHost + "/", "/%2F%2F" + evilHost + "/", "/%2f" + evilHost + "/",
		"/%5C" + evilHost + "/", "/%5c%5c" + evilHost + "/", "/.//" + evilHost + "/", "/%09/" + evilHost} {
		path := path
		list = append(list, attack{"an open redirect after sign-in via the path " + path, func(t *testing.T, a *arena) {
			c := noRedirects(a.st.browser())
			resp, _ := navigate(t, c, a.loginCallback(t, c, path))
			if resp.StatusCode != http.StatusFound || !hasSession(resp) {
				t.Fatalf("callback: %d", resp.StatusCode)
			}
			loc := resp.Header.Get("Location")
			if strings.HasPrefix(loc, "/") {
				loc = a.st.server.URL + loc // as the browser resolves it; "//x" then fails the check
			}
			checkSameOrigin(t, loc, a.st.server.URL)
		}})
	}

	// Open redirects through the logout rd field: the POST and the sign-out
	// page that offers it. Each value reaches the plugin exactly as written.
	for _, rd := range []string{
		"//" + evilHost, "///" + evilHost, "////" + evilHost, `/\` + evilHost, `\\` + evilHost, `\/` + evilHost,
		"/%2F%2F" + evilHost, "/%2f" + evilHost, "/%5C" + evilHost, "/%5c%5c" + evilHost, "%2F%2F" + evilHost,
		"https://" + evilHost, "http://" + evilHost + "/", "HTTPS://" + evilHost, "https:" + evilHost, "https:/" + evilHost,
		"https:///" + evilHost, `https:\\` + evilHost, "https://" + evilHost + "#@{host}", "https://{host}@" + evilHost,
		"https://{host}." + evilHost, `https://` + evilHost + `\@{host}`, "//{host}@" + evilHost, "https://127.0.0.1:1/",
		"javascript:alert(document.domain)", "JaVaScRiPt:alert(1)", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
		"vbscript:msgbox(1)", " //" + evilHost, "\t//" + evilHost, "/\t/" + evilHost, "/\r\n/" + evilHost, "//" + evilHost + "%00",
		"\uff0f\uff0f" + evilHost, "/\u2215" + evilHost, "/%0d%0aLocation:%20https://" + evilHost,
	} {
		rd := rd
		list = append(list, attack{"an open redirect via the logout rd field " + strings.ToValidUTF8(rd, "?"), func(t *testing.T, a *arena) {
			host := strings.TrimPrefix(a.st.server.URL, "https://")
			value := strings.ReplaceAll(rd, "{host}", host)
			checkSameOrigin(t, a.logoutTarget(t, value), a.st.server.URL)
			_, body := navigate(t, a.st.browser(), a.st.server.URL+"/portals/main/logout?rd="+url.QueryEscape(value))
			if i := strings.Index(body, `name=rd value="`); i >= 0 {
				offered := body[i+len(`name=rd value="`):]
				offered = html.UnescapeString(offered[:strings.IndexByte(offered, '"')])
				if strings.HasPrefix(offered, "/") {
					offered = a.st.server.URL + offered
				}
				checkSameOrigin(t, offered, a.st.server.URL)
			}
		}})
	}

	// Open redirects in auth-host mode, where returns may go to any host
	// under the cookie domain: hosts that only look like one.
	for _, rd := range []string{
		"https://example.com." + evilHost + "/", "https://evilexample.com/", "https://app.example.com." + evilHost + "/",
		"https://" + evilHost + "/.example.com", "https://" + evilHost + "?.example.com", "https://" + evilHost + "#.example.com",
		`https://` + evilHost + `\.example.com`, "https://" + evilHost + "%2F.example.com", "https://app.example.com@" + evilHost + "/",
		"https://" + evilHost + "%00.example.com/", "https://" + evilHost + "%2Eexample.com/",
	} {
		rd := rd
		list = append(list, attack{"an open redirect in auth-host mode via " + rd, func(t *testing.T, a *arena) {
			form := url.Values{"rd": {rd}}.Encode()
			r := httptest.NewRequest("POST", "https://app.example.com/portals/main/logout", strings.NewReader(form))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Origin", "https://app.example.com")
			w := httptest.NewRecorder()
			a.authHost.ServeHTTP(w, r)
			if w.Code != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", w.Code)
			}
			u, err := url.Parse(w.Header().Get("Location"))
			if err != nil || u.Scheme != "https" || u.User != nil || !hostUnderDomain(u.Hostname(), "example.com") ||
				strings.ContainsAny(w.Header().Get("Location"), "\\%#?@") {
				t.Fatalf("sign-out continues to %q, outside example.com", w.Header().Get("Location"))
			}
		}})
	}

	// Session cookie tampering: a genuine chunked session, altered.
	cookieAttacks := []struct {
		name   string
		cookie func(a *arena) string
	}{
		{"a tampered first chunk", func(a *arena) string { return joinCookies(a.editChunk(0, flipMiddle)) }},
		{"a tampered middle chunk", func(a *arena) string { return joinCookies(a.editChunk(1, flipMiddle)) }},
		{"a truncated last chunk", func(a *arena) string {
			return joinCookies(a.editChunk(2, func(v string) string { return v[:len(v)-4] }))
		}},
		{"a missing chunk", func(a *arena) string { return joinCookies([]cookiePair{a.chunks[0], a.chunks[2]}) }},
		{"reordered chunks", func(a *arena) string {
			return joinCookies([]cookiePair{a.chunks[0], {a.chunks[1].name, a.chunks[2].value}, {a.chunks[2].name, a.chunks[1].value}})
		}},
		{"chunks of two genuine sessions mixed", func(a *arena) string {
			return joinCookies([]cookiePair{a.chunks[0], a.other[1], a.chunks[2]})
		}},
		{"a chunk sent twice", func(a *arena) string { return joinCookies(append(append([]cookiePair{}, a.chunks...), a.chunks[1])) }},
		{"the session cookie sent twice, the attacker's first", func(a *arena) string {
			return joinCookies(append([]cookiePair{a.other[0]}, a.chunks...))
		}},
		{"a chunk count above the maximum", func(a *arena) string { return joinCookies(a.editCount("9")) }},
		{"a huge chunk count", func(a *arena) string { return joinCookies(a.editCount("99999999999999999999")) }},
		{"a chunk count of zero", func(a *arena) string { return joinCookies(a.editCount("0")) }},
		{"a negative chunk count", func(a *arena) string { return joinCookies(a.editCount("-3")) }},
		{"a chunk count with a leading zero", func(a *arena) string { return joinCookies(a.editCount("03")) }},
		{"a chunk count with a plus sign", func(a *arena) string { return joinCookies(a.editCount("+3")) }},
		{"a chunk count lower than the chunks sent", func(a *arena) string { return joinCookies(a.editCount("2")) }},
		{"a chunk count higher than the chunks sent", func(a *arena) string { return joinCookies(a.editCount("4")) }},
		{"an extra chunk with a higher count", func(a *arena) string {
			return joinCookies(append(a.editCount("4"), cookiePair{"__Host-entraauth_main_3", a.chunks[2].value}))
		}},
		{"chunks renamed with leading zeros", func(a *arena) string {
			return joinCookies([]cookiePair{a.chunks[0], {"__Host-entraauth_main_01", a.chunks[1].value}, {"__Host-entraauth_main_02", a.chunks[2].value}})
		}},
		{"the chunk count stripped", func(a *arena) string {
			return joinCookies(a.editChunk(0, func(v string) string { return v[strings.IndexByte(v, '.')+1:] }))
		}},
		{"eight forged chunks of the maximum size", func(a *arena) string {
			pairs := []cookiePair{{"__Host-entraauth_main", "8." + strings.Repeat("A", session.ChunkSize-2)}}
			for i := 1; i < session.MaxChunks; i++ {
				pairs = append(pairs, cookiePair{"__Host-entraauth_main_" + string(rune('0'+i)), strings.Repeat("A", session.ChunkSize)})
			}
			return joinCookies(pairs)
		}},
		{"a single cookie over the chunk size", func(a *arena) string {
			return "__Host-entraauth_main=" + strings.Repeat("A", session.ChunkSize+1)
		}},
		{"a cookie header of 100 KB", func(a *arena) string {
			var b strings.Builder
			for i := 0; i < 2000; i++ {
				b.WriteString("junk" + strings.Repeat("x", 40) + "=" + strings.Repeat("y", 10) + "; ")
			}
			return b.String() + joinCookies(a.editChunk(1, flipMiddle))
		}},
		{"a session sealed for another portal's cookie", func(a *arena) string {
			return "__Host-entraauth_main=" + a.seal(aliceSession(), session.AAD("entraauth_admin", "https://login.microsoftonline.com", testTenantID, testClientID), time.Now().Add(time.Hour))
		}},
		{"a session sealed for a login-state cookie", func(a *arena) string {
			return "entraauth_main=" + a.seal(aliceSession(), a.guarded.loginAAD("entraauth_main_login_abcdefghijkl"), time.Now().Add(time.Hour))
		}},
		{"a session sealed with another secret", func(a *arena) string {
			other, _ := session.NewSealer("an-attacker-secret-of-32-characters-or-more", nil)
			plain, _ := aliceSession().Marshal()
			v, _ := other.Seal(plain, a.guarded.sessionAAD, time.Now().Add(time.Hour))
			return "__Host-entraauth_main=" + v
		}},
		{"a session whose sealed expiry has passed", func(a *arena) string {
			return "__Host-entraauth_main=" + a.seal(aliceSession(), a.guarded.sessionAAD, time.Now().Add(-time.Second))
		}},
		{"a session whose own expiry has passed", func(a *arena) string {
			s := aliceSession()
			s.Expires = time.Now().Add(-time.Second).Unix()
			return "__Host-entraauth_main=" + a.seal(s, a.guarded.sessionAAD, time.Now().Add(time.Hour))
		}},
		{"a cookie that is not base64", func(a *arena) string { return "__Host-entraauth_main=%%%not-base64!!" }},
		{"a cookie with a line break", func(a *arena) string {
			return "__Host-entraauth_main=" + a.chunks[1].value[:10] + "\n" + a.chunks[1].value[10:]
		}},
	}
	// A sibling subdomain can set a cookie for the parent domain under the
	// session cookie's name before the __Host- prefix (cookie tossing):
	// never read when the __Host- cookie is there, valid or not.
	cookieAttacks = append(cookieAttacks, struct {
		name   string
		cookie func(a *arena) string
	}{"a broken __Host- session beside an old-name session planted by a sibling", func(a *arena) string {
		return "__Host-entraauth_main=" + flipMiddle(a.seal(aliceSession(), hostAAD, time.Now().Add(time.Hour))) + "; entraauth_main=" + a.seal(attackerSession(), legacyAAD, time.Now().Add(time.Hour))
	}})
	for _, order := range []string{"planted first", "planted last"} {
		order := order
		list = append(list, attack{"session fixation: an old-name cookie planted for the parent domain does not replace the victim's __Host- session, " + order, func(t *testing.T, a *arena) {
			victim := sessionCookie(t, a.guarded, aliceSession())
			planted := "entraauth_main=" + a.seal(attackerSession(), legacyAAD, time.Now().Add(time.Hour))
			cookie := planted + "; " + victim
			if order == "planted last" {
				cookie = victim + "; " + planted
			}
			a.serveGuardedTwice(t, cookie, func() *http.Request {
				r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
				r.Header.Set("Accept", "application/json")
				r.Header.Set("Cookie", cookie)
				return r
			}, alice.OID)
		}})
	}
	for _, ca := range cookieAttacks {
		ca := ca
		list = append(list, attack{"session cookie: " + ca.name, func(t *testing.T, a *arena) {
			r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Cookie", ca.cookie(a))
			a.serveGuarded(t, r, http.StatusUnauthorized)
		}})
	}
	list = append(list, sessionEndAttacks()...)
	return list
}

// sessionEndAttacks are the attacks on the end of a session: a copied
// cookie after sign-out, a shared cache, a sign-in loop.
func sessionEndAttacks() []attack {
	return []attack{
		{"a session cookie copied before its sign-out, replayed after it", func(t *testing.T, a *arena) {
			rs := newRenewalStack(t, alice, nil)
			stolen := rs.cookies()
			rs.signOut(t)
			for _, at := range []time.Duration{0, time.Hour + time.Minute} {
				rs.advance(at)
				if got := rs.sendWith(t, stolen, "/", apiCall()).StatusCode; got != http.StatusUnauthorized {
					t.Fatalf("%v after the sign-out: %d, want 401", at, got)
				}
			}
		}},
		{"a renewed session cookie kept by a shared cache for everyone", func(t *testing.T, a *arena) {
			rs := newRenewalStack(t, alice, nil)
			// A call, not the function as a value: Yaegi v0.16.1 turns a
			// function of a file it compiles later into a no-op when used
			// as a value here.
			rs.mw.next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { cacheableUpstream(w, r) })
			rs.advance(time.Hour + time.Minute)
			resp, _ := rs.send(t, http.MethodGet, "/app.js", http.Header{"Accept": {"*/*"}})
			if findSetCookie(resp, rs.mw.cookie.Name+"=") == "" {
				t.Fatal("no renewal")
			}
			checkPrivate(t, "the renewing response", resp.Header)
		}},
		{"an API's Conditional Access answered with silent sign-ins in a loop", func(t *testing.T, a *arena) {
			rs := conditionalAccessStack(t, entraidtest.PolicyCompliantDevice)
			before := rs.tenant.Hits(entraidtest.Authorize)
			c := *rs.user
			c.CheckRedirect = nil
			resp, _ := navigate(t, &c, rs.server.URL+"/payslips")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%d at %s, want the policy's error page", resp.StatusCode, resp.Request.URL)
			}
			if got := rs.tenant.Hits(entraidtest.Authorize) - before; got != 1 {
				t.Errorf("%d sign-ins, want 1", got)
			}
		}},
	}
}

// claimsAttack is a sign-in whose genuinely signed ID token has claims
// changed by mutate.
func claimsAttack(name string, mutate func(claims map[string]interface{})) attack {
	return attack{name, func(t *testing.T, a *arena) {
		a.st.tenant.SetClaimsHook(mutate)
		defer a.st.tenant.SetClaimsHook(nil)
		c := noRedirects(a.st.browser())
		resp, body := navigate(t, c, a.loginCallback(t, c, "/"))
		refusedSignIn(t, resp, body, http.StatusUnauthorized, "invalid_id_token")
		a.checkNotSignedIn(t, c)
	}}
}

// crossSiteLogout posts a sign-out with these headers ({host} is the
// site's host) from the signed-in victim's browser.
func crossSiteLogout(name string, headers map[string]string) attack {
	return attack{name, func(t *testing.T, a *arena) {
		c := noRedirects(a.victimBrowser(t))
		req, _ := http.NewRequest("POST", a.st.server.URL+"/portals/main/logout", strings.NewReader("rd=%2F"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, strings.ReplaceAll(v, "{host}", strings.TrimPrefix(a.st.server.URL, "https://")))
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
		a.checkStillSignedIn(t)
	}}
}

func newArena(t *testing.T) *arena {
	t.Helper()
	a := &arena{st: newStack(t, nil), attackerHits: &hitCounter{}}
	// One assignment per statement: Yaegi loses struct fields assigned
	// together from a call.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a.attacker = key
	jwks := jwt.MarshalJWKS(jwt.KeySet{attackerKid: &a.attacker.PublicKey})
	hits := a.attackerHits
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.add()
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	t.Cleanup(func() { evil.Close() })
	a.attackerJWKS = evil.URL + "/keys"

	guarded, upstream := guard(t, func(c *Config) { c.ExcludedPaths = []string{"/public/*"} })
	a.guarded = guarded
	a.upstream = upstream
	authHost, _ := guard(t, func(c *Config) {
		c.AuthHost = "auth.example.com"
		c.Session.CookieDomain = "example.com"
		// Unreachable at once: sign-out then continues without Entra ID.
		c.MicrosoftEntraID.AuthorityHost = "http://127.0.0.1:1"
	})
	a.authHost = authHost
	api, apiSeen := guard(t, func(c *Config) {
		c.MicrosoftEntraID.AuthorityHost = a.st.tenant.URL
		c.MicrosoftEntraID.ClientSecret = a.st.tenant.ClientSecret
		c.APIAudience = []string{apiAudience, apiClientID}
	})
	a.api = api
	a.apiSeen = apiSeen
	apiOfApp, apiOfAppSeen := guard(t, func(c *Config) {
		c.MicrosoftEntraID.AuthorityHost = a.st.tenant.URL
		c.MicrosoftEntraID.ClientSecret = a.st.tenant.ClientSecret
		c.APIAudience = []string{testClientID}
		c.RequiredScopes = []string{"Items.Read"}
		c.AllowedRoles = []string{"Reader"}
		c.APIAppRoles = []string{"Items.Sync"}
	})
	a.apiOfApp = apiOfApp
	a.apiOfAppSeen = apiOfAppSeen
	a.bearer(t, a.st.tenant.SignToken(a.apiClaims()), http.StatusOK)
	a.bearer(t, a.st.tenant.SignToken(a.st.tenant.APIAccessTokenClaims(alice, attackAPIv2, "Items.Read")), http.StatusOK)
	a.bearerTo(t, a.apiOfApp, a.apiOfAppSeen, a.st.tenant.SignToken(a.st.tenant.APIAccessTokenClaims(alice, appAsAPI, "Items.Read")), http.StatusOK)

	groups := make([]string, 200)
	for i := range groups {
		groups[i] = strings.Replace(otherGUID, "0000", strings.Repeat(string(rune('a'+i%6)), 4), 1)
	}
	big := aliceSession()
	big.Groups = groups
	a.chunks = splitCookies(oldSessionCookie(t, a.guarded, big))
	big2 := aliceSession()
	big2.Groups = groups
	big2.IssuedAt = 1
	a.other = splitCookies(oldSessionCookie(t, a.guarded, big2))
	if len(a.chunks) != 3 || len(a.other) != 3 {
		t.Fatalf("the large session takes %d and %d cookies, want 3", len(a.chunks), len(a.other))
	}
	// The genuine cookies pass: the attacks below differ from them only
	// by the attack.
	r := httptest.NewRequest("GET", "https://app.example.com/private", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Cookie", joinCookies(a.chunks))
	a.serveGuarded(t, r, http.StatusOK)
	return a
}

// loginCallback starts a sign-in at path in c and returns the callback URL
// the tenant sends the browser to, without following it.
func (a *arena) loginCallback(t *testing.T, c *http.Client, path string) string {
	t.Helper()
	resp, _ := navigate(t, c, a.st.server.URL+path)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("start at %s: status %d", path, resp.StatusCode)
	}
	resp, _ = navigate(t, c, resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// refuseForgedToken signs in with the ID token forge makes of the claims
// the tenant would have signed, and checks that the sign-in is refused.
func (a *arena) refuseForgedToken(t *testing.T, forge func(claims map[string]interface{}) string) {
	t.Helper()
	a.st.tenant.SetIDTokenHook(forge)
	defer a.st.tenant.SetIDTokenHook(nil)
	c := noRedirects(a.st.browser())
	resp, body := navigate(t, c, a.loginCallback(t, c, "/"))
	refusedSignIn(t, resp, body, http.StatusUnauthorized, "invalid_id_token")
	a.checkNotSignedIn(t, c)
}

// refuseInjectedKey forges a token signed by the attacker with header
// fields that point at the attacker's key, and checks that the plugin
// neither accepts it nor fetches anything the token names.
func (a *arena) refuseInjectedKey(t *testing.T, extra map[string]interface{}) {
	t.Helper()
	before := a.attackerHits.get()
	header := map[string]interface{}{"alg": "RS256", "kid": attackerKid, "typ": "JWT"}
	for k, v := range extra {
		header[k] = v
	}
	a.refuseForgedToken(t, func(claims map[string]interface{}) string {
		tok, _ := jwt.SignWithHeader(a.attacker, header, claims)
		return tok
	})
	if got := a.attackerHits.get() - before; got != 0 {
		t.Fatalf("the plugin fetched the attacker's key URL %d times", got)
	}
}

// tenantKey is the tenant's current public key, as anyone can fetch it.
func (a *arena) tenantKey(t *testing.T) *rsa.PublicKey {
	t.Helper()
	resp, err := http.Get(a.st.tenant.URL + "/" + a.st.tenant.TenantID + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	keys, err := jwt.ParseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	return keys[a.st.tenant.KeyID()]
}

// hmacToken signs header and claims with HMAC-SHA256 keyed with secret.
func hmacToken(header, claims map[string]interface{}, secret []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// refusedSignIn checks that a callback answered status with code on its
// page and set no session cookie.
func refusedSignIn(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || !strings.Contains(body, code) {
		t.Fatalf("got %d, want %d with %s: %.300q", resp.StatusCode, status, code, body)
	}
	if hasSession(resp) {
		t.Fatal("a session cookie was set")
	}
}

// hasSession reports whether resp sets a session cookie or chunk.
func hasSession(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if session.IsChunkName("__Host-entraauth_main", c.Name) && c.Value != "" && c.MaxAge >= 0 {
			return true
		}
	}
	return false
}

// checkNotSignedIn checks that c is sent to sign in.
func (a *arena) checkNotSignedIn(t *testing.T, c *http.Client) {
	t.Helper()
	resp, _ := navigate(t, noRedirects(c), a.st.server.URL+"/after")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("after the attack: %d, want a redirect to sign in", resp.StatusCode)
	}
}

// victimBrowser is a browser signed in through the stack, shared by the
// attacks that must leave it signed in.
func (a *arena) victimBrowser(t *testing.T) *http.Client {
	t.Helper()
	a.victimMu.Lock()
	defer a.victimMu.Unlock()
	if a.victim == nil {
		c := a.st.browser()
		a.signedInUpstreamWith(t, c, "/victim")
		a.victim = c
	}
	return a.victim
}

func (a *arena) checkStillSignedIn(t *testing.T) {
	t.Helper()
	resp, body := navigate(t, noRedirects(a.victimBrowser(t)), a.st.server.URL+"/still")
	if resp.StatusCode != http.StatusOK || body != "upstream /still" {
		t.Fatalf("the victim was signed out: %d %q", resp.StatusCode, body)
	}
}

// signedInUpstream signs in at path in a new browser and returns the
// headers the upstream received on arrival.
func (a *arena) signedInUpstream(t *testing.T, path string) http.Header {
	t.Helper()
	return a.signedInUpstreamWith(t, a.st.browser(), path)
}

func (a *arena) signedInUpstreamWith(t *testing.T, c *http.Client, path string) http.Header {
	t.Helper()
	a.drainUpstream()
	resp, body := navigate(t, c, a.st.server.URL+path)
	if resp.StatusCode != http.StatusOK || body != "upstream "+path {
		t.Fatalf("sign-in at %s ended with %d %q", path, resp.StatusCode, body)
	}
	return a.nextUpstream(t)
}

func (a *arena) drainUpstream() {
	for {
		select {
		case <-a.st.upstream:
		default:
			return
		}
	}
}

func (a *arena) nextUpstream(t *testing.T) http.Header {
	t.Helper()
	select {
	case h := <-a.st.upstream:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream received no request")
		return nil
	}
}

// serveGuarded sends r through the guarded middleware and checks the
// status; for anything but 200, the upstream must not have been reached.
func (a *arena) serveGuarded(t *testing.T, r *http.Request, status int) {
	t.Helper()
	*a.upstream = nil
	w := httptest.NewRecorder()
	a.guarded.ServeHTTP(w, r)
	if w.Code != status {
		t.Fatalf("status %d, want %d", w.Code, status)
	}
	if status != http.StatusOK && *a.upstream != nil {
		t.Fatal("the upstream was reached")
	}
}

// serveGuardedTwice serves the request build makes, with cookie, twice
// through guarded: the first time authorize decides, the second time the
// session cache does; both must reach the upstream with oid's identity
// alone.
func (a *arena) serveGuardedTwice(t *testing.T, cookie string, build func() *http.Request, oid string) {
	t.Helper()
	a.serveGuarded(t, build(), http.StatusOK)
	a.checkIdentityHeaders(t, oid)
	if sessions.get(a.guarded.cache.prefix+cookie) == nil {
		t.Fatal("the first request left nothing in the session cache")
	}
	a.serveGuarded(t, build(), http.StatusOK)
	a.checkIdentityHeaders(t, oid)
}

// checkIdentityHeaders checks what guarded's upstream received.
func (a *arena) checkIdentityHeaders(t *testing.T, oid string) {
	t.Helper()
	checkIdentityHeaderSet(t, *a.upstream, oid)
}

// checkIdentityHeaderSet checks that the only identity header in h, in any
// spelling (casing, any other character than a letter or digit for '-'), is
// X-Forwarded-User = oid with one value; none at all when oid is "".
func checkIdentityHeaderSet(t *testing.T, h http.Header, oid string) {
	t.Helper()
	for k, vs := range h {
		name := strings.ToLower(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, k))
		if !strings.HasPrefix(name, "x-forwarded-") {
			continue
		}
		switch name {
		case "x-forwarded-user":
			if oid == "" || k != "X-Forwarded-User" || len(vs) != 1 || vs[0] != oid {
				t.Errorf("upstream got %s = %.40q, want %q only", k, vs, oid)
			}
		case "x-forwarded-email", "x-forwarded-name", "x-forwarded-preferred-username", "x-forwarded-groups", "x-forwarded-roles":
			if oid == "" || k != http.CanonicalHeaderKey(k) || len(vs) != 1 || strings.Contains(vs[0], "mallory") ||
				strings.Contains(vs[0], "ceo@") || strings.Contains(vs[0], "admins") || vs[0] == "Admin,Owner" || vs[0] == "CEO" {
				t.Errorf("upstream got %s = %.40q", k, vs)
			}
		}
	}
	if oid != "" && h.Get("X-Forwarded-User") != oid {
		t.Errorf("upstream X-Forwarded-User = %q, want %q", h.Get("X-Forwarded-User"), oid)
	}
}

// signedOutLink signs out of the stack's middleware from a page at
// referer (a same-origin POST, without rd) and returns the link back that
// the signed-out page shows, served at origin with the cookie the sign-out
// set for it.
func (a *arena) signedOutLink(t *testing.T, origin, referer string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", a.st.server.URL+"/portals/main/logout", nil)
	req.Header.Set("Origin", a.st.server.URL)
	req.Header.Set("Referer", referer)
	resp, err := noRedirects(a.st.browser()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d, want 303", resp.StatusCode)
	}
	page := httptest.NewRequest("GET", origin+"/portals/main/signed-out", nil)
	page.Header.Set("Accept", "text/html")
	for _, c := range resp.Cookies() {
		if c.Path == "/portals/main/signed-out" {
			page.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	w := httptest.NewRecorder()
	a.st.mw.ServeHTTP(w, page)
	body := w.Body.String()
	const button = `<a class=button href="`
	i := strings.Index(body, button)
	if w.Code != http.StatusOK || i < 0 {
		t.Fatalf("the signed-out page: %d %.300q", w.Code, body)
	}
	link := body[i+len(button):]
	return html.UnescapeString(link[:strings.IndexByte(link, '"')])
}

// logoutTarget posts a same-origin sign-out with rd and returns where the
// user lands after Entra ID's end-session endpoint.
func (a *arena) logoutTarget(t *testing.T, rd string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", a.st.server.URL+"/portals/main/logout", strings.NewReader(url.Values{"rd": {rd}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.st.server.URL)
	resp, err := noRedirects(a.st.browser()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d, want 303", resp.StatusCode)
	}
	return postLogoutTarget(t, resp)
}

func postLogoutTarget(t *testing.T, resp *http.Response) string {
	t.Helper()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if target := loc.Query().Get("post_logout_redirect_uri"); target != "" {
		return target
	}
	return loc.String()
}

// checkSameOrigin checks that target, where a browser is sent, is on the
// origin base (scheme://host:port): a path of it, with nothing a browser
// could read as another host (backslashes, control characters, a second
// leading slash, user info).
func checkSameOrigin(t *testing.T, target, base string) {
	t.Helper()
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			t.Fatalf("redirect target %q holds %q", target, c)
		}
	}
	u, err := url.Parse(target)
	b, _ := url.Parse(base)
	if err != nil || u.Scheme != b.Scheme || u.Host != b.Host || u.User != nil ||
		!(target == base || strings.HasPrefix(target, base+"/") && !strings.HasPrefix(target, base+"//")) {
		t.Fatalf("redirect target %q is not on %s", target, base)
	}
}

func splitCookies(header string) []cookiePair {
	var out []cookiePair
	for _, part := range strings.Split(header, "; ") {
		name, value, _ := strings.Cut(part, "=")
		out = append(out, cookiePair{name, value})
	}
	return out
}

func joinCookies(pairs []cookiePair) string {
	parts := make([]string, 0, len(pairs))
	for _, p := range pairs {
		parts = append(parts, p.name+"="+p.value)
	}
	return strings.Join(parts, "; ")
}

// editChunk returns the genuine chunks with chunk i changed by edit.
func (a *arena) editChunk(i int, edit func(string) string) []cookiePair {
	out := append([]cookiePair{}, a.chunks...)
	out[i] = cookiePair{out[i].name, edit(out[i].value)}
	return out
}

// editCount returns the genuine chunks with the chunk count replaced.
func (a *arena) editCount(count string) []cookiePair {
	return a.editChunk(0, func(v string) string { return count + v[strings.IndexByte(v, '.'):] })
}

func flipMiddle(v string) string { return flipChar(v, len(v)/2) }

// The arena's session cookie is __Host-entraauth_main; legacyAAD is what
// its sessions were sealed under before the __Host- prefix, as
// entraauth_main.
var (
	hostAAD   = session.AAD("__Host-entraauth_main", "https://login.microsoftonline.com", testTenantID, testClientID)
	legacyAAD = session.AAD("entraauth_main", "https://login.microsoftonline.com", testTenantID, testClientID)
)

// attackerSession is the attacker's own genuine session, of the same app.
func attackerSession() *session.Session {
	return &session.Session{OID: "a77ac4e5-0000-4000-8000-00000000a77a", TID: testTenantID, Name: "Mallory", PreferredUsername: "mallory@contoso.example"}
}

// seal seals s under aad with the guarded middleware's secret.
func (a *arena) seal(s *session.Session, aad string, expires time.Time) string {
	if s.IssuedAt == 0 {
		s.IssuedAt = time.Now().Unix()
	}
	if s.Expires == 0 {
		s.Expires = time.Now().Add(time.Hour).Unix()
	}
	plain, _ := s.Marshal()
	v, _ := a.guarded.sealer.Seal(plain, aad, expires)
	return v
}

// The arena's APIs as Entra ID issues tokens for them: attackAPI in v1.0
// (the default) asked for by its URI, or in v2.0; appAsAPI is the sign-in
// app itself exposing an API for v2.0 tokens.
var (
	attackAPIv1 = entraidtest.API{ClientID: apiClientID, IdentifierURI: apiAudience}
	attackAPIv2 = entraidtest.API{ClientID: apiClientID, IdentifierURI: apiAudience, TokenVersion: 2}
	appAsAPI    = entraidtest.API{ClientID: testClientID, TokenVersion: 2}
)

// apiClaims are the claims of a genuine access token of alice for the
// arena's API.
func (a *arena) apiClaims() map[string]interface{} {
	return a.st.tenant.APIAccessTokenClaims(alice, attackAPIv1, "Items.Read")
}

// bearer sends tok to the arena's API with a spoofed identity header and
// checks the status: a pass carries alice's identity only; a refusal
// reaches no upstream and explains itself in a well-formed
// WWW-Authenticate header.
func (a *arena) bearer(t *testing.T, tok string, status int) {
	t.Helper()
	a.bearerTo(t, a.api, a.apiSeen, tok, status)
}

func (a *arena) bearerTo(t *testing.T, api *Middleware, seen *http.Header, tok string, status int) {
	t.Helper()
	r := httptest.NewRequest("GET", "https://app.example.com/api/items", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("X-Forwarded-User", "mallory")
	*seen = nil
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	if w.Code != status {
		t.Fatalf("status %d, want %d (WWW-Authenticate %q)", w.Code, status, w.Header().Get("WWW-Authenticate"))
	}
	if status == http.StatusOK {
		checkIdentityHeaderSet(t, *seen, alice.OID)
		return
	}
	if *seen != nil {
		t.Fatal("the upstream was reached")
	}
	code := "invalid_token"
	if status == http.StatusForbidden {
		code = "insufficient_scope"
	}
	wa := w.Header().Get("WWW-Authenticate")
	if strings.ContainsAny(wa, "\r\n") || strings.Count(wa, `"`) != 6 || !strings.Contains(wa, `error="`+code+`"`) {
		t.Fatalf("WWW-Authenticate %q is not one well-formed challenge", wa)
	}
}

// An emergency key rotation right after a forged bearer kid: the forged kid
// spends the rate-limited refetch, Entra ID then signs with a brand-new key,
// and a user who signs in at once still gets in, because an ID token from
// the token endpoint always refetches the keys it lacks.
func TestASignInRightAfterAForgedKidSurvivesAnEmergencyKeyRotation(t *testing.T) {
	st := newStack(t, func(c *Config) { c.APIAudience = []string{apiAudience} })
	forged, _ := jwt.Sign(mustRSAKey(t), "forged-kid", st.tenant.APIAccessTokenClaims(alice, attackAPIv1, "Items.Read"))
	r := httptest.NewRequest("GET", "https://app.example.com/api", nil)
	r.Header.Set("Authorization", "Bearer "+forged)
	w := httptest.NewRecorder()
	before := st.tenant.Hits(entraidtest.JWKS)
	st.mw.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("a bearer token with a forged kid: %d, want 401", w.Code)
	}
	if st.tenant.Hits(entraidtest.JWKS) == before {
		t.Fatal("the forged kid did not make the plugin fetch the keys: the test proves nothing")
	}
	st.tenant.RotateKey(false)
	resp, body := navigate(t, st.browser(), st.server.URL+"/start")
	if resp.StatusCode != http.StatusOK || body != "upstream /start" {
		t.Fatalf("a sign-in right after the rotation ended with %d %.300q", resp.StatusCode, body)
	}
}

func mustRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
