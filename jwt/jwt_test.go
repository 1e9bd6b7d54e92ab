package jwt

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testKey  = mustKey()
	otherKey = mustKey()
)

func mustKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func b64(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// forgeHS256 builds the classic key-confusion token: HS256 keyed with the
// bytes of the RSA public key the verifier holds.
func forgeHS256(pub *rsa.PublicKey, claims map[string]interface{}) string {
	der := x509.MarshalPKCS1PublicKey(pub)
	input := b64(map[string]interface{}{"alg": "HS256", "typ": "JWT", "kid": "k1"}) + "." + b64(claims)
	m := hmac.New(sha256.New, der)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func mustSign(t *testing.T, claims map[string]interface{}) string {
	t.Helper()
	s, err := Sign(testKey, "k1", claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParse(t *testing.T) {
	good := mustSign(t, map[string]interface{}{"sub": "alice", "n": 1.5})
	parts := strings.Split(good, ".")
	tests := []struct {
		name    string
		raw     string
		wantErr bool
	}{
		{"a signed token parses", good, false},
		{"an unsigned alg none token parses (Verify refuses it)", b64(map[string]string{"alg": "none"}) + "." + b64(map[string]string{}) + ".", false},
		{"an empty string is refused", "", true},
		{"two parts are refused", parts[0] + "." + parts[1], true},
		{"four parts are refused", good + ".x", true},
		{"five parts (JWE) are refused", good + ".a.b", true},
		{"padding is refused", parts[0] + "=." + parts[1] + "." + parts[2], true},
		{"standard base64 characters are refused", parts[0] + "." + parts[1] + "+/." + parts[2], true},
		{"an embedded newline is refused", parts[0] + "\n." + parts[1] + "." + parts[2], true},
		{"non-canonical trailing bits are refused", b64(map[string]string{"alg": "RS256"}) + "." + "e30" + "." + "AB", true},
		{"a header that is not JSON is refused", "bm90LWpzb24." + parts[1] + "." + parts[2], true},
		{"a header that is a JSON array is refused", b64([]string{"RS256"}) + "." + parts[1] + "." + parts[2], true},
		{"a null header is refused", b64(nil) + "." + parts[1] + "." + parts[2], true},
		{"a header without alg is refused", b64(map[string]string{"kid": "k1"}) + "." + parts[1] + "." + parts[2], true},
		{"a non-string alg is refused", b64(map[string]interface{}{"alg": 256}) + "." + parts[1] + "." + parts[2], true},
		{"a non-string kid is refused", b64(map[string]interface{}{"alg": "RS256", "kid": 1}) + "." + parts[1] + "." + parts[2], true},
		{"a crit header is refused", b64(map[string]interface{}{"alg": "RS256", "crit": []string{"b64"}}) + "." + parts[1] + "." + parts[2], true},
		{"a payload that is a JSON string is refused", parts[0] + "." + b64("claims") + "." + parts[2], true},
		{"a null payload is refused", parts[0] + "." + b64(nil) + "." + parts[2], true},
		{"a payload with trailing data is refused", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{} {}`)) + "." + parts[2], true},
		{"a token over MaxSize is refused", parts[0] + "." + strings.Repeat("A", MaxSize) + "." + parts[2], true},
	}
	for _, tt := range tests {
		tok, err := Parse(tt.raw)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: got nil error", tt.name)
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: error %v is not ErrMalformed", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if tok.Claims == nil {
			t.Errorf("%s: nil claims", tt.name)
		}
	}
}

func TestParseHeader(t *testing.T) {
	plain := mustSign(t, map[string]interface{}{})
	withNonce, err := SignWithHeader(testKey, map[string]interface{}{"alg": "RS256", "kid": "k2", "typ": "at+jwt", "nonce": "abc"}, map[string]interface{}{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		raw  string
		want Header
	}{
		{"Sign writes alg, kid and typ", plain, Header{Alg: "RS256", Kid: "k1", Typ: "JWT"}},
		{"a nonce header is reported", withNonce, Header{Alg: "RS256", Kid: "k2", Typ: "at+jwt", Nonce: true}},
	}
	for _, tt := range tests {
		tok, err := Parse(tt.raw)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tok.Header != tt.want {
			t.Errorf("%s: header %+v, want %+v", tt.name, tok.Header, tt.want)
		}
	}
}

func TestVerifyRS256(t *testing.T) {
	claims := map[string]interface{}{"sub": "alice"}
	good := mustSign(t, claims)
	unsigned, _ := SignWithHeader(nil, map[string]interface{}{"alg": "none", "kid": "k1"}, claims)
	noneSigned, _ := SignWithHeader(testKey, map[string]interface{}{"alg": "none", "kid": "k1"}, claims)
	rs384, _ := SignWithHeader(testKey, map[string]interface{}{"alg": "RS384", "kid": "k1"}, claims)
	lower, _ := SignWithHeader(testKey, map[string]interface{}{"alg": "rs256", "kid": "k1"}, claims)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64(map[string]interface{}{"sub": "mallory"}) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)-1] ^= 1
	flipped := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	short := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig[:100])

	tests := []struct {
		name string
		raw  string
		key  *rsa.PublicKey
		want error
	}{
		{"a token signed with the key verifies", good, &testKey.PublicKey, nil},
		{"alg none without signature is refused", unsigned, &testKey.PublicKey, ErrAlgorithm},
		{"alg none with a valid RS256 signature is refused", noneSigned, &testKey.PublicKey, ErrAlgorithm},
		{"HS256 keyed with the public key is refused", forgeHS256(&testKey.PublicKey, claims), &testKey.PublicKey, ErrAlgorithm},
		{"RS384 is refused", rs384, &testKey.PublicKey, ErrAlgorithm},
		{"a lower-case rs256 is refused", lower, &testKey.PublicKey, ErrAlgorithm},
		{"alg is checked before the key", unsigned, nil, ErrAlgorithm},
		{"another key is refused", good, &otherKey.PublicKey, ErrSignature},
		{"a nil key is refused", good, nil, ErrSignature},
		{"a tampered payload is refused", tampered, &testKey.PublicKey, ErrSignature},
		{"a flipped signature bit is refused", flipped, &testKey.PublicKey, ErrSignature},
		{"a truncated signature is refused", short, &testKey.PublicKey, ErrSignature},
	}
	for _, tt := range tests {
		tok, err := Parse(tt.raw)
		if err != nil {
			t.Fatalf("%s: parse: %v", tt.name, err)
		}
		err = tok.VerifyRS256(tt.key)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestClaimAccessors(t *testing.T) {
	raw := mustSign(t, map[string]interface{}{
		"iss":   "https://issuer",
		"aud":   "client",
		"auds":  []string{"a", "b"},
		"mixed": []interface{}{"a", 1, "b"},
		"num":   42,
		"exp":   1700000000,
		"frac":  1700000000.5,
		"neg":   -1,
		"huge":  1e300,
		"str":   "1700000000",
	})
	tok, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("String returns strings and nothing else", func(t *testing.T) {
		if got := tok.String("iss"); got != "https://issuer" {
			t.Errorf("iss = %q", got)
		}
		if got := tok.String("num"); got != "" {
			t.Errorf("num = %q, want empty", got)
		}
		if got := tok.String("missing"); got != "" {
			t.Errorf("missing = %q, want empty", got)
		}
	})
	t.Run("Strings accepts a string or an array", func(t *testing.T) {
		tests := []struct {
			name string
			want string
		}{
			{"aud", "client"},
			{"auds", "a,b"},
			{"mixed", "a,b"},
			{"num", ""},
			{"missing", ""},
		}
		for _, tt := range tests {
			if got := strings.Join(tok.Strings(tt.name), ","); got != tt.want {
				t.Errorf("Strings(%q) = %q, want %q", tt.name, got, tt.want)
			}
		}
	})
	t.Run("Time reads NumericDates", func(t *testing.T) {
		tests := []struct {
			name   string
			want   time.Time
			wantOK bool
		}{
			{"exp", time.Unix(1700000000, 0), true},
			{"frac", time.Unix(1700000000, 500000000), true},
			{"neg", time.Time{}, false},
			{"huge", time.Time{}, false},
			{"str", time.Time{}, false},
			{"missing", time.Time{}, false},
		}
		for _, tt := range tests {
			got, ok := tok.Time(tt.name)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("Time(%q) = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
			}
		}
	})
	t.Run("Time accepts json.Number", func(t *testing.T) {
		tok := &Token{Claims: map[string]interface{}{"exp": json.Number("1700000001"), "bad": json.Number("x")}}
		if got, ok := tok.Time("exp"); !ok || got.Unix() != 1700000001 {
			t.Errorf("exp = %v, %v", got, ok)
		}
		if _, ok := tok.Time("bad"); ok {
			t.Error("an invalid json.Number was accepted")
		}
	})
}

func TestSignWithHeader(t *testing.T) {
	t.Run("claims round-trip", func(t *testing.T) {
		raw, err := SignWithHeader(testKey, map[string]interface{}{"alg": "RS256", "kid": "x"}, map[string]interface{}{"roles": []string{"admin"}})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := tok.VerifyRS256(&testKey.PublicKey); err != nil {
			t.Fatal(err)
		}
		if got := tok.Strings("roles"); len(got) != 1 || got[0] != "admin" {
			t.Errorf("roles = %v", got)
		}
	})
	t.Run("claims that do not marshal are an error", func(t *testing.T) {
		if _, err := Sign(testKey, "k", map[string]interface{}{"c": make(chan int)}); err == nil {
			t.Error("got nil error")
		}
	})
}

// parseSeeds are the starting corpus of FuzzParse. TestParseSeeds runs them
// too, because yaegi test compiles fuzz targets but never runs them.
func parseSeeds(good string) []string {
	return []string{
		good,
		"",
		".",
		"..",
		"...",
		"e30.e30.",
		"eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJSUzI1NiJ9.bnVsbA.",
		good + "=",
		strings.Replace(good, ".", "..", 1),
		strings.Repeat(".", MaxSize+1),
	}
}

// checkParse is the property FuzzParse checks: Parse never panics, and what
// it accepts has an alg and an object payload, and only the genuine token
// verifies.
func checkParse(t *testing.T, good, raw string) {
	tok, err := Parse(raw)
	if err != nil {
		if tok != nil {
			t.Fatal("token returned with an error")
		}
		return
	}
	if tok.Claims == nil || tok.Header.Alg == "" {
		t.Fatalf("accepted %q without claims or alg", raw)
	}
	if raw != good && tok.VerifyRS256(&testKey.PublicKey) == nil {
		t.Fatalf("a token other than the seed verified: %q", raw)
	}
}

func TestParseSeeds(t *testing.T) {
	good := mustSign(t, map[string]interface{}{"sub": "alice", "aud": []string{"a"}})
	for _, raw := range parseSeeds(good) {
		checkParse(t, good, raw)
	}
}

func FuzzParse(f *testing.F) {
	good, err := Sign(testKey, "k1", map[string]interface{}{"sub": "alice", "aud": []string{"a"}})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range parseSeeds(good) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		checkParse(t, good, raw)
	})
}

func TestPS256(t *testing.T) {
	claims := map[string]interface{}{"iss": "app", "sub": "app"}
	signed, err := SignPS256(testKey, map[string]interface{}{"alg": "RS256", "typ": "JWT", "x5t#S256": "s256", "x5t": "sha1"}, claims)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header.Alg != "PS256" || tok.Header.X5tS256 != "s256" || tok.Header.X5t != "sha1" {
		t.Errorf("header %+v, want alg PS256 whatever the caller wrote, and both thumbprints", tok.Header)
	}
	// What any RFC 7518 verifier does: RSASSA-PSS, SHA-256, MGF1 SHA-256,
	// a salt as long as the hash.
	parts := strings.Split(signed, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPSS(&testKey.PublicKey, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Errorf("not an RFC 7518 PS256 signature: %v", err)
	}
	tampered := parts[0] + "." + b64(map[string]interface{}{"iss": "other", "sub": "app"}) + "." + parts[2]
	tests := []struct {
		name  string
		token string
		key   *rsa.PublicKey
		rs256 bool
		want  error
	}{
		{"the signer's key verifies it", signed, &testKey.PublicKey, false, nil},
		{"another key does not", signed, &otherKey.PublicKey, false, ErrSignature},
		{"no key does not", signed, nil, false, ErrSignature},
		{"a changed payload does not", tampered, &testKey.PublicKey, false, ErrSignature},
		{"VerifyRS256 refuses a PS256 token", signed, &testKey.PublicKey, true, ErrAlgorithm},
		{"VerifyPS256 refuses an RS256 token", mustSign(t, claims), &testKey.PublicKey, false, ErrAlgorithm},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Parse(tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if tt.rs256 {
				err = tok.VerifyRS256(tt.key)
			} else {
				err = tok.VerifyPS256(tt.key)
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
