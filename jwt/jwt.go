// Package jwt parses, verifies and signs compact JSON Web Signatures (RFC 7515)
// with RS256, the only algorithm Microsoft Entra ID uses for ID tokens, and
// PS256, which Entra ID recommends for the client assertions an application
// signs with its certificate.
//
// It is deliberately small: one algorithm, no key negotiation, claims as a
// plain map. Parse only decodes; nothing in a token can be trusted before
// VerifyRS256 has returned nil.
package jwt

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxSize bounds the length of a compact token accepted by Parse. Entra ID
// tokens with 200 groups stay well below it; anything larger is refused
// before any decoding work is done.
const MaxSize = 16 << 10

// Errors returned by this package, wrapped with detail. Test with errors.Is.
var (
	// ErrMalformed means the token is not a well-formed compact JWS.
	ErrMalformed = errors.New("jwt: malformed token")
	// ErrAlgorithm means the token's alg header is not the one required.
	ErrAlgorithm = errors.New("jwt: unsupported algorithm")
	// ErrSignature means the signature does not verify with the key given.
	ErrSignature = errors.New("jwt: invalid signature")
)

// Header holds the JOSE header fields the verifier needs.
type Header struct {
	Alg string
	Kid string
	Typ string
	// X5t and X5tS256 are the certificate thumbprints x5t (SHA-1) and
	// x5t#S256 (SHA-256), base64url, that name the key of a client
	// assertion signed with a certificate.
	X5t     string
	X5tS256 string
	// Nonce reports whether a "nonce" header is present. Microsoft Graph
	// access tokens carry one; they are hashed before signing and cannot be
	// verified by anyone but Graph.
	Nonce bool
}

// Token is a decoded, not yet verified, compact JWS.
type Token struct {
	Header Header
	// Claims is the decoded payload. JSON numbers are float64.
	Claims map[string]interface{}

	signingInput string
	signature    []byte
}

// rawURL is base64url without padding, refusing non-canonical trailing bits
// so that each token has exactly one encoding.
var rawURL = base64.RawURLEncoding.Strict()

// Parse decodes a compact JWS: exactly three base64url parts without padding,
// a JSON object header and a JSON object payload. It checks nothing about the
// signature; call VerifyRS256 before trusting any claim.
func Parse(raw string) (*Token, error) {
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(raw), MaxSize)
	}
	if raw == "" {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: %d parts, want 3", ErrMalformed, len(parts))
	}
	headerJSON, err := decodePart("header", parts[0])
	if err != nil {
		return nil, err
	}
	payload, err := decodePart("payload", parts[1])
	if err != nil {
		return nil, err
	}
	sig, err := decodePart("signature", parts[2])
	if err != nil {
		return nil, err
	}

	var h map[string]interface{}
	if err := decodeObject(headerJSON, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	t := &Token{signingInput: parts[0] + "." + parts[1], signature: sig}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"alg", &t.Header.Alg}, {"kid", &t.Header.Kid}, {"typ", &t.Header.Typ}, {"x5t", &t.Header.X5t}, {"x5t#S256", &t.Header.X5tS256}} {
		v, ok := h[f.name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%w: header %q is not a string", ErrMalformed, f.name)
		}
		*f.dst = s
	}
	if t.Header.Alg == "" {
		return nil, fmt.Errorf("%w: header has no alg", ErrMalformed)
	}
	// Critical extensions change how a token must be processed (RFC 7515
	// 4.1.11); this package implements none, so it must refuse them.
	if _, ok := h["crit"]; ok {
		return nil, fmt.Errorf("%w: unsupported crit header", ErrMalformed)
	}
	_, t.Header.Nonce = h["nonce"]

	if err := decodeObject(payload, &t.Claims); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	return t, nil
}

// decodePart decodes one base64url part, refusing padding, whitespace and
// anything outside the URL-safe alphabet (Go's decoder skips newlines).
func decodePart(name, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: %s: invalid character %q at offset %d", ErrMalformed, name, c, i)
		}
	}
	b, err := rawURL.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	return b, nil
}

// decodeObject decodes a JSON object; json.Unmarshal alone would accept
// "null" and leave the map nil.
func decodeObject(b []byte, dst *map[string]interface{}) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a JSON object")
	}
	return json.Unmarshal(b, dst)
}

// VerifyRS256 checks the signature with RSASSA-PKCS1-v1_5 over SHA-256. It
// refuses any alg other than exactly "RS256" before touching the key, so a
// token cannot choose "none" or an HMAC keyed with the public key.
func (t *Token) VerifyRS256(key *rsa.PublicKey) error {
	if t.Header.Alg != "RS256" {
		return fmt.Errorf("%w: alg %q, want RS256", ErrAlgorithm, t.Header.Alg)
	}
	if key == nil {
		return fmt.Errorf("%w: no key", ErrSignature)
	}
	if len(t.signature) != key.Size() {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrSignature, len(t.signature), key.Size())
	}
	sum := sha256.Sum256([]byte(t.signingInput))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], t.signature); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// pssOptions are RFC 7518's for PS256: a salt as long as the hash.
var pssOptions = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}

// VerifyPS256 checks the signature with RSASSA-PSS over SHA-256, refusing
// any alg other than exactly "PS256" before touching the key.
func (t *Token) VerifyPS256(key *rsa.PublicKey) error {
	if t.Header.Alg != "PS256" {
		return fmt.Errorf("%w: alg %q, want PS256", ErrAlgorithm, t.Header.Alg)
	}
	if key == nil {
		return fmt.Errorf("%w: no key", ErrSignature)
	}
	sum := sha256.Sum256([]byte(t.signingInput))
	if err := rsa.VerifyPSS(key, crypto.SHA256, sum[:], t.signature, pssOptions); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// String returns the named claim, or "" when it is absent or not a string.
func (t *Token) String(name string) string {
	s, _ := t.Claims[name].(string)
	return s
}

// Strings returns the named claim as a list: a single string becomes a list
// of one (as "aud" may be), an array keeps only its string elements.
func (t *Token) Strings(name string) []string {
	switch v := t.Claims[name].(type) {
	case string:
		return []string{v}
	case []interface{}:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z; later values are not dates anyone
// issues and would overflow time arithmetic.
const maxNumericDate = 253402300799

// Time returns the named NumericDate claim (seconds since the epoch, JSON
// number, fractions allowed). ok is false when absent, not a number, or
// outside year 1970..9999.
func (t *Token) Time(name string) (time.Time, bool) {
	var f float64
	switch v := t.Claims[name].(type) {
	case float64:
		f = v
	case json.Number:
		n, err := v.Float64()
		if err != nil {
			return time.Time{}, false
		}
		f = n
	default:
		return time.Time{}, false
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// Sign returns an RS256 token with header {"alg":"RS256","kid":kid,"typ":"JWT"}.
func Sign(key *rsa.PrivateKey, kid string, claims map[string]interface{}) (string, error) {
	return SignWithHeader(key, map[string]interface{}{"alg": "RS256", "kid": kid, "typ": "JWT"}, claims)
}

// SignWithHeader signs claims with RS256 under exactly the header given, so
// that tests and fakes can forge tokens whose header lies (alg "none",
// "HS256", a "nonce" header). A nil key yields an empty signature, the shape
// of an unsecured alg "none" token.
func SignWithHeader(key *rsa.PrivateKey, header map[string]interface{}, claims map[string]interface{}) (string, error) {
	input, err := signingInput(header, claims)
	if err != nil {
		return "", err
	}
	if key == nil {
		return input + ".", nil
	}
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("jwt: sign: %v", err)
	}
	return input + "." + rawURL.EncodeToString(sig), nil
}

// signingInput is what a JWS signature covers: the header and the claims,
// each as base64url JSON, joined by a dot.
func signingInput(header, claims map[string]interface{}) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("jwt: header: %v", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jwt: claims: %v", err)
	}
	return rawURL.EncodeToString(h) + "." + rawURL.EncodeToString(c), nil
}

// SignPS256 signs claims with RSASSA-PSS over SHA-256 (salt as long as the
// hash) under header, whose alg it sets to PS256.
func SignPS256(key *rsa.PrivateKey, header map[string]interface{}, claims map[string]interface{}) (string, error) {
	if key == nil {
		return "", errors.New("jwt: sign: no key")
	}
	full := map[string]interface{}{}
	for k, v := range header {
		full[k] = v
	}
	full["alg"] = "PS256"
	input, err := signingInput(full, claims)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, sum[:], pssOptions)
	if err != nil {
		return "", fmt.Errorf("jwt: sign: %v", err)
	}
	return input + "." + rawURL.EncodeToString(sig), nil
}
