package jwt

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
)

// FuzzVerifyRS256 builds tokens from a fuzzed header and payload, signed
// for real or with fuzzed signature bytes, and checks what the verifier
// decides. yaegi test ignores Fuzz functions: TestVerifyRS256Seeds runs
// the seeds there.

type verifySeed struct {
	header, payload string
	sign            bool   // sign the input with testKey
	sig             []byte // otherwise, these signature bytes
}

func verifySeeds() []verifySeed {
	return []verifySeed{
		{`{"alg":"RS256","kid":"k1","typ":"JWT"}`, `{"sub":"alice","exp":1700000000}`, true, nil},
		{`{"alg":"RS256"}`, `{}`, true, nil},
		{`{"alg":"none"}`, `{"sub":"alice"}`, false, nil},
		{`{"alg":"HS256","kid":"k1"}`, `{"sub":"alice"}`, false, make([]byte, 32)},
		{`{"alg":"RS256 "}`, `{"sub":"alice"}`, true, nil},
		{`{"alg":"rs256"}`, `{"sub":"alice"}`, true, nil},
		{`{"alg":"RS256","crit":["exp"]}`, `{"sub":"alice"}`, true, nil},
		{`{"alg":"RS256","nonce":"x"}`, `{"sub":"alice"}`, true, nil},
		{`{"alg":"RS256","alg":"none"}`, `{"sub":"alice"}`, true, nil},
		{`{"alg":"RS256"}`, `{"exp":1e400}`, true, nil},
		{`{"alg":"RS256"}`, `{"exp":-1,"nbf":"1","iat":253402300800,"aud":["a",1,null]}`, true, nil},
		{`{"alg":"RS256"}`, `null`, true, nil},
		{`{"alg":"RS256"}`, `{"sub":"alice"}`, false, make([]byte, 256)},
		{`{"alg":"RS256"}`, `{"sub":"alice"}`, false, []byte{1}},
		{` {"alg":"RS256"} `, "\ufeff{}", true, nil},
		{`{"alg":1}`, `{}`, true, nil},
	}
}

// checkVerify is the property: building and parsing never panics; a token
// verifies exactly when its alg is "RS256" and testKey signed its very
// signing input; and claim accessors never panic on what Parse accepts.
func checkVerify(t *testing.T, header, payload string, sign bool, sigBytes []byte) {
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig := sigBytes
	if sign {
		sum := sha256.Sum256([]byte(input))
		var err error
		sig, err = rsa.SignPKCS1v15(rand.Reader, testKey, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
	}
	raw := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	tok, err := Parse(raw)
	if err != nil {
		if tok != nil || !errors.Is(err, ErrMalformed) {
			t.Fatalf("Parse error %v (token %v), want ErrMalformed and no token", err, tok)
		}
		return
	}
	for name := range tok.Claims {
		tok.String(name)
		tok.Strings(name)
		if tm, ok := tok.Time(name); ok && (tm.Unix() < 0 || tm.Year() > 9999) {
			t.Fatalf("Time(%q) = %v, outside 1970..9999", name, tm)
		}
	}
	err = tok.VerifyRS256(&testKey.PublicKey)
	switch {
	case tok.Header.Alg != "RS256":
		if !errors.Is(err, ErrAlgorithm) {
			t.Fatalf("alg %q: VerifyRS256 = %v, want ErrAlgorithm", tok.Header.Alg, err)
		}
	case sign && err != nil:
		t.Fatalf("a token signed by the key does not verify: %v", err)
	case !sign && err == nil:
		t.Fatalf("a token with forged signature bytes verified: %q", raw)
	}
	if err == nil && tok.VerifyRS256(&otherKey.PublicKey) == nil {
		t.Fatal("a token verified with two keys")
	}
}

func TestVerifyRS256Seeds(t *testing.T) {
	for _, s := range verifySeeds() {
		checkVerify(t, s.header, s.payload, s.sign, s.sig)
	}
}

func FuzzVerifyRS256(f *testing.F) {
	for _, s := range verifySeeds() {
		f.Add(s.header, s.payload, s.sign, s.sig)
	}
	f.Fuzz(func(t *testing.T, header, payload string, sign bool, sig []byte) {
		checkVerify(t, header, payload, sign, sig)
	})
}
