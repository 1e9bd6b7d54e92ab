package jwt

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

func jwkJSON(kid string, pub *rsa.PublicKey, extra map[string]interface{}) map[string]interface{} {
	k := map[string]interface{}{
		"kty": "RSA",
		"use": "sig",
		"kid": kid,
		"x5t": kid,
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   "AQAB",
		"x5c": []string{"MIIC..."},
	}
	for name, v := range extra {
		if v == nil {
			delete(k, name)
			continue
		}
		k[name] = v
	}
	return k
}

func jwksJSON(keys ...map[string]interface{}) []byte {
	b, err := json.Marshal(map[string]interface{}{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseJWKS(t *testing.T) {
	pub := &testKey.PublicKey
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		wantKids string
		wantErr  string
	}{
		{"an Entra-shaped key is usable", jwksJSON(jwkJSON("k1", pub, nil)), "k1", ""},
		{"keys without use are usable", jwksJSON(jwkJSON("k1", pub, map[string]interface{}{"use": nil})), "k1", ""},
		{"keys with alg RS256 are usable", jwksJSON(jwkJSON("k1", pub, map[string]interface{}{"alg": "RS256"})), "k1", ""},
		{"padded n is tolerated", jwksJSON(jwkJSON("k1", pub, map[string]interface{}{"n": base64.URLEncoding.EncodeToString(pub.N.Bytes())})), "k1", ""},
		{"unusable keys are skipped next to good ones", jwksJSON(
			jwkJSON("ec", pub, map[string]interface{}{"kty": "EC"}),
			jwkJSON("enc", pub, map[string]interface{}{"use": "enc"}),
			jwkJSON("ps", pub, map[string]interface{}{"alg": "PS256"}),
			jwkJSON("bad-n", pub, map[string]interface{}{"n": "!!"}),
			jwkJSON("num-n", pub, map[string]interface{}{"n": 5}),
			jwkJSON("small", &small.PublicKey, nil),
			jwkJSON("even-e", pub, map[string]interface{}{"e": "AAE"}),
			jwkJSON("", pub, nil),
			jwkJSON("k1", pub, nil),
			jwkJSON("k2", &otherKey.PublicKey, nil),
		), "k1,k2", ""},
		{"a set with only unusable keys is an error naming them", jwksJSON(jwkJSON("ec", pub, map[string]interface{}{"kty": "EC"})), "", `(kid "ec"): kty "EC"`},
		{"an empty set is an error", []byte(`{"keys":[]}`), "", "no keys"},
		{"a missing keys member is an error", []byte(`{}`), "", "no keys"},
		{"garbage is an error", []byte(`<html>`), "", "jwt: jwks"},
		{"keys that are not an array are an error", []byte(`{"keys":{}}`), "", "jwt: jwks"},
	}
	for _, tt := range tests {
		ks, err := ParseJWKS(tt.data)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var kids []string
		for _, kid := range strings.Split(tt.wantKids, ",") {
			if ks[kid] == nil {
				t.Errorf("%s: kid %q missing", tt.name, kid)
			}
			kids = append(kids, kid)
		}
		if len(ks) != len(kids) {
			t.Errorf("%s: %d keys, want %d", tt.name, len(ks), len(kids))
		}
	}
	t.Run("the first key with a repeated kid is kept", func(t *testing.T) {
		ks, err := ParseJWKS(jwksJSON(jwkJSON("k1", pub, nil), jwkJSON("k1", &otherKey.PublicKey, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if ks["k1"].N.Cmp(pub.N) != 0 {
			t.Error("the second key replaced the first")
		}
	})
}

func TestMarshalJWKS(t *testing.T) {
	keys := KeySet{"b": &otherKey.PublicKey, "a": &testKey.PublicKey}
	data := MarshalJWKS(keys)

	t.Run("output has Entra's shape, sorted by kid", func(t *testing.T) {
		var doc struct {
			Keys []map[string]interface{} `json:"keys"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Keys) != 2 || doc.Keys[0]["kid"] != "a" || doc.Keys[1]["kid"] != "b" {
			t.Fatalf("keys = %v", doc.Keys)
		}
		for _, k := range doc.Keys {
			for _, name := range []string{"kty", "use", "kid", "x5t", "n", "e"} {
				if _, ok := k[name]; !ok {
					t.Errorf("key %v has no %s", k["kid"], name)
				}
			}
			if _, ok := k["alg"]; ok {
				t.Errorf("key %v has an alg; Entra's keys have none", k["kid"])
			}
			if k["use"] != "sig" || k["kty"] != "RSA" || k["e"] != "AQAB" {
				t.Errorf("key %v: %v", k["kid"], k)
			}
		}
	})
	t.Run("output parses back to the same keys", func(t *testing.T) {
		ks, err := ParseJWKS(data)
		if err != nil {
			t.Fatal(err)
		}
		for kid, want := range keys {
			got := ks[kid]
			if got == nil || got.N.Cmp(want.N) != 0 || got.E != want.E {
				t.Errorf("kid %q did not round-trip", kid)
			}
		}
	})
	t.Run("an odd exponent other than 65537 round-trips", func(t *testing.T) {
		pub := &rsa.PublicKey{N: testKey.N, E: 3}
		ks, err := ParseJWKS(MarshalJWKS(KeySet{"e3": pub}))
		if err != nil {
			t.Fatal(err)
		}
		if ks["e3"].E != 3 {
			t.Errorf("e = %d", ks["e3"].E)
		}
	})
	t.Run("an empty set marshals to an empty keys array", func(t *testing.T) {
		if got := string(MarshalJWKS(nil)); got != `{"keys":[]}` {
			t.Errorf("got %s", got)
		}
		if got := string(MarshalJWKS(KeySet{"nil": nil, "nilN": &rsa.PublicKey{N: (*big.Int)(nil)}})); got != `{"keys":[]}` {
			t.Errorf("got %s", got)
		}
	})
}
