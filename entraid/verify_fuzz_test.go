package entraid

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// FuzzVerifyIDToken signs fuzzed claims with the tenant's genuine key, so
// that every claim check is reached, and compares VerifyIDToken's verdict
// with the rules stated independently in idTokenAcceptable. yaegi test
// ignores Fuzz functions: TestVerifyIDTokenSeeds runs the seeds there.

const (
	fuzzTenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	fuzzClientID = "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc"
	fuzzNonce    = "n0nce-of-this-login"
)

// fuzzNow is the fixed time of the fuzzed sign-ins.
var fuzzNow = time.Unix(1700000000, 0)

// verifyFixture is a tenant and a client whose discovery and keys are
// fetched once, on a fixed clock.
type verifyFixture struct {
	tenant *entraidtest.Tenant
	client *Client
}

func newVerifyFixture(tb testing.TB) *verifyFixture {
	tb.Helper()
	clk := &clock{now: fuzzNow}
	ten := entraidtest.NewTenant(entraidtest.Options{TenantID: fuzzTenantID, ClientID: fuzzClientID, Now: clk.Now})
	tb.Cleanup(func() { ten.Close() })
	c, err := NewClient(Config{AuthorityHost: ten.URL, Tenant: fuzzTenantID, ClientID: fuzzClientID, Credential: ClientSecret(ten.ClientSecret), Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return &verifyFixture{tenant: ten, client: c}
}

// verifySeeds are claim sets in JSON, with {iss} standing for the tenant's
// issuer (its port differs in every fuzzing process).
func verifySeeds() []string {
	t := fuzzNow.Unix()
	num := func(d int64) string {
		b, _ := json.Marshal(t + d)
		return string(b)
	}
	base := `"iss":"{iss}","aud":"` + fuzzClientID + `","tid":"` + fuzzTenantID + `","oid":"6c1e3d5a-7b8f-4a2e-9d1c-0b2a3c4d5e6f","nonce":"` + fuzzNonce + `","ver":"2.0"`
	times := `"iat":` + num(0) + `,"nbf":` + num(0) + `,"exp":` + num(3600)
	return []string{
		`{` + base + `,` + times + `}`,
		`{` + base + `,"iat":` + num(0) + `,"exp":` + num(-299) + `}`,
		`{` + base + `,"iat":` + num(0) + `,"exp":` + num(-301) + `}`,
		`{` + base + `,"iat":` + num(299) + `,"nbf":` + num(301) + `,"exp":` + num(3600) + `}`,
		`{` + base + `,"iat":1.7e9,"exp":1.7000036e9}`,
		`{` + base + `,"iat":"` + num(0) + `","exp":` + num(3600) + `}`,
		`{` + strings.Replace(base, `"aud":"`+fuzzClientID+`"`, `"aud":["`+fuzzClientID+`","other"],"azp":"`+fuzzClientID+`"`, 1) + `,` + times + `}`,
		`{` + strings.Replace(base, `"aud":"`+fuzzClientID+`"`, `"aud":["`+fuzzClientID+`",1]`, 1) + `,` + times + `}`,
		`{` + strings.Replace(base, `"ver":"2.0"`, `"ver":2`, 1) + `,` + times + `}`,
		`{` + strings.Replace(base, fuzzTenantID, strings.ToUpper(fuzzTenantID), 1) + `,` + times + `}`,
		`{` + strings.Replace(base, `"nonce":"`+fuzzNonce+`"`, `"nonce":["`+fuzzNonce+`"]`, 1) + `,` + times + `}`,
		`{` + base + `,` + times + `,"azp":null}`,
		`{` + base + `,` + times + `,"exp":1e308}`,
		`{` + base + `,"iat":-1,"exp":` + num(60) + `}`,
		`{}`,
	}
}

// number reads a NumericDate as the rules define it: a JSON number within
// years 1970 to 9999.
func number(v interface{}, present bool) (float64, bool) {
	f, ok := v.(float64)
	if !present || !ok || math.IsNaN(f) || f < 0 || f > 253402300799 {
		return 0, false
	}
	return f, true
}

// idTokenAcceptable states what an ID token of this client's login must
// satisfy. near is true when a time check is within a millisecond of its
// bound, where float and time arithmetic may round either way.
func idTokenAcceptable(c map[string]interface{}, issuer string) (ok, near bool) {
	now := float64(fuzzNow.UnixNano()) / 1e9
	const skew = 300.0
	str := func(name string) string { s, _ := c[name].(string); return s }
	within := func(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

	if str("iss") != issuer || str("tid") != fuzzTenantID || str("oid") == "" || str("nonce") != fuzzNonce {
		return false, false
	}
	var aud []string
	switch v := c["aud"].(type) {
	case string:
		aud = []string{v}
	case []interface{}:
		for _, e := range v {
			if s, isStr := e.(string); isStr {
				aud = append(aud, s)
			}
		}
	}
	hasAud := false
	for _, a := range aud {
		hasAud = hasAud || a == fuzzClientID
	}
	azp, hasAzp := c["azp"]
	if !hasAud || (len(aud) > 1 && !hasAzp) || (hasAzp && azp != fuzzClientID) {
		return false, false
	}
	if v, has := c["ver"]; has && v != "2.0" {
		return false, false
	}
	exp, okExp := number(c["exp"], c["exp"] != nil)
	iat, okIat := number(c["iat"], c["iat"] != nil)
	if !okExp || !okIat {
		return false, false
	}
	near = within(now, exp+skew) || within(now+skew, iat)
	if !(now < exp+skew) || now+skew < iat {
		return false, near
	}
	if v, has := c["nbf"]; has {
		nbf, okNbf := number(v, true)
		if !okNbf {
			return false, near
		}
		near = near || within(now+skew, nbf)
		if now+skew < nbf {
			return false, near
		}
	}
	return true, near
}

func (f *verifyFixture) check(t *testing.T, claimsJSON string) {
	claimsJSON = strings.ReplaceAll(claimsJSON, "{iss}", f.tenant.Issuer())
	var claims map[string]interface{}
	if json.Unmarshal([]byte(claimsJSON), &claims) != nil || claims == nil {
		return
	}
	raw := f.tenant.SignToken(claims)
	got, err := f.client.VerifyIDToken(context.Background(), raw, fuzzNonce)
	// What the verifier sees is the claims as signed, after a JSON round
	// trip (e.g. numbers as float64).
	var signed map[string]interface{}
	b, _ := json.Marshal(claims)
	json.Unmarshal(b, &signed)
	want, near := idTokenAcceptable(signed, f.tenant.Issuer())
	if near {
		return
	}
	switch {
	case want && err != nil:
		t.Fatalf("refused a token that satisfies every rule: %v\nclaims %s", err, b)
	case !want && err == nil:
		t.Fatalf("accepted a token that breaks a rule: claims %s", b)
	case err == nil && (got.OID != signed["oid"] || got.TID != fuzzTenantID):
		t.Fatalf("claims %+v do not match the token %s", got, b)
	}
}

func TestVerifyIDTokenSeeds(t *testing.T) {
	f := newVerifyFixture(t)
	accepted := 0
	for _, s := range verifySeeds() {
		f.check(t, s)
		var claims map[string]interface{}
		json.Unmarshal([]byte(strings.ReplaceAll(s, "{iss}", f.tenant.Issuer())), &claims)
		if ok, _ := idTokenAcceptable(claims, f.tenant.Issuer()); ok {
			accepted++
		}
	}
	if accepted < 3 {
		t.Fatalf("only %d seeds are acceptable tokens: the seeds no longer reach the accepting path", accepted)
	}
}

func FuzzVerifyIDToken(f *testing.F) {
	fx := newVerifyFixture(f)
	for _, s := range verifySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, claimsJSON string) {
		fx.check(t, claimsJSON)
	})
}
