package jwt

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
)

// KeySet maps a key ID (the JWS "kid" header) to its RSA public key.
type KeySet map[string]*rsa.PublicKey

// minKeyBits refuses keys too weak to trust; Entra ID signs with 2048-bit keys.
const minKeyBits = 2048

// jwk is one JSON Web Key as Entra ID publishes it. Flat and tagged so that
// encoding/json handles it the same compiled and under Yaegi.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
	Kid string `json:"kid"`
	X5t string `json:"x5t,omitempty"`
	N   string `json:"n"`
	E   string `json:"e"`
	Alg string `json:"alg,omitempty"`
}

type jwksDoc struct {
	Keys []json.RawMessage `json:"keys"`
}

type jwksOut struct {
	Keys []jwk `json:"keys"`
}

// ParseJWKS decodes a JWK Set and returns its usable signing keys: kty "RSA",
// use "sig" or absent, alg "RS256" or absent, a kid, and a modulus of at least
// 2048 bits. Other keys are skipped, so one odd key published next to good
// ones does not break sign-in; a set without any usable key is an error.
func ParseJWKS(data []byte) (KeySet, error) {
	var doc jwksDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwt: jwks: %v", err)
	}
	keys := KeySet{}
	var skipped []string
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		if _, dup := keys[k.Kid]; !dup {
			keys[k.Kid] = pub
		}
	}
	if len(keys) == 0 {
		if len(skipped) == 0 {
			return nil, errors.New("jwt: jwks: no keys")
		}
		return nil, fmt.Errorf("jwt: jwks: no usable key: %s", strings.Join(skipped, "; "))
	}
	return keys, nil
}

func (k *jwk) publicKey() (*rsa.PublicKey, error) {
	if k.Kty != "RSA" {
		return nil, fmt.Errorf("kty %q, want RSA", k.Kty)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("use %q, want sig", k.Use)
	}
	if k.Alg != "" && k.Alg != "RS256" {
		return nil, fmt.Errorf("alg %q, want RS256", k.Alg)
	}
	if k.Kid == "" {
		return nil, errors.New("no kid")
	}
	nb, err := decodeKeyInt(k.N)
	if err != nil {
		return nil, fmt.Errorf("n: %v", err)
	}
	eb, err := decodeKeyInt(k.E)
	if err != nil {
		return nil, fmt.Errorf("e: %v", err)
	}
	n := new(big.Int).SetBytes(nb)
	if n.BitLen() < minKeyBits {
		return nil, fmt.Errorf("modulus of %d bits, want at least %d", n.BitLen(), minKeyBits)
	}
	e := new(big.Int).SetBytes(eb)
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return nil, errors.New("unusable exponent")
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

// decodeKeyInt decodes a base64url big-endian integer. Some publishers pad
// their JWKs; the padding carries no meaning, so it is tolerated here.
func decodeKeyInt(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return b, nil
}

// MarshalJWKS encodes keys the way Entra ID publishes them: kty, use "sig",
// kid, x5t, n, e and no alg, sorted by kid so that the output is stable.
// Entra ID's kid is the certificate thumbprint, so x5t repeats the kid.
func MarshalJWKS(keys KeySet) []byte {
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	out := jwksOut{Keys: make([]jwk, 0, len(kids))}
	for _, kid := range kids {
		pub := keys[kid]
		if pub == nil || pub.N == nil {
			continue
		}
		out.Keys = append(out.Keys, jwk{
			Kty: "RSA",
			Use: "sig",
			Kid: kid,
			X5t: kid,
			N:   rawURL.EncodeToString(pub.N.Bytes()),
			E:   rawURL.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	// Only strings and slices of strings: Marshal cannot fail.
	b, _ := json.Marshal(out)
	return b
}
