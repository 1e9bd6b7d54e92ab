package jwt

import (
	"encoding/base64"
	"math/big"
	"testing"
)

// FuzzParseJWKS feeds JWK Sets to ParseJWKS. yaegi test ignores Fuzz
// functions: TestParseJWKSSeeds runs the seeds there.

func jwksSeeds() [][]byte {
	n := base64.RawURLEncoding.EncodeToString(testKey.PublicKey.N.Bytes())
	return [][]byte{
		MarshalJWKS(KeySet{"k1": &testKey.PublicKey, "k2": &otherKey.PublicKey}),
		jwksJSON(jwkJSON("k1", &testKey.PublicKey, map[string]interface{}{"alg": "RS256"})),
		jwksJSON(jwkJSON("k1", &testKey.PublicKey, map[string]interface{}{"use": "enc"})),
		jwksJSON(jwkJSON("k1", &testKey.PublicKey, map[string]interface{}{"e": "AAAAAQAB"})),
		jwksJSON(jwkJSON("k1", &testKey.PublicKey, map[string]interface{}{"e": "Ag"})),
		jwksJSON(jwkJSON("k1", &testKey.PublicKey, map[string]interface{}{"n": n + "=="})),
		jwksJSON(jwkJSON("", &testKey.PublicKey, nil)),
		jwksJSON(jwkJSON("k1", &testKey.PublicKey, map[string]interface{}{"kty": "EC"})),
		[]byte(`{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`),
		[]byte(`{"keys":[{"kty":"RSA","kid":"k","n":"` + n + `","e":"/////////w"}]}`),
		[]byte(`{"keys":[null,1,"x",{}]}`),
		[]byte(`{"keys":null}`),
		[]byte(`{"keys":{}}`),
		[]byte(`null`),
		[]byte(``),
		[]byte(`[]`),
	}
}

// checkJWKS is the property: ParseJWKS never panics, returns keys or an
// error, and every key it returns is usable (a kid, at least 2048 bits, an
// odd exponent from 3 to 2^31-1) and survives MarshalJWKS unchanged.
func checkJWKS(t *testing.T, data []byte) {
	keys, err := ParseJWKS(data)
	if err != nil {
		if keys != nil {
			t.Fatal("keys returned with an error")
		}
		return
	}
	if len(keys) == 0 {
		t.Fatal("no keys and no error")
	}
	for kid, k := range keys {
		if kid == "" || k == nil || k.N.BitLen() < minKeyBits || k.E < 3 || k.E%2 == 0 || int64(k.E) > 1<<31-1 {
			t.Fatalf("unusable key %q accepted", kid)
		}
	}
	again, err := ParseJWKS(MarshalJWKS(keys))
	if err != nil || len(again) != len(keys) {
		t.Fatalf("MarshalJWKS output does not parse back: %v", err)
	}
	for kid, k := range keys {
		if again[kid] == nil || again[kid].N.Cmp(k.N) != 0 || again[kid].E != k.E || new(big.Int).Set(k.N).Sign() <= 0 {
			t.Fatalf("key %q changed through MarshalJWKS", kid)
		}
	}
}

func TestParseJWKSSeeds(t *testing.T) {
	for _, data := range jwksSeeds() {
		checkJWKS(t, data)
	}
}

func FuzzParseJWKS(f *testing.F) {
	for _, data := range jwksSeeds() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkJWKS(t, data)
	})
}
