package entraidtest

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// testCertificate is a certificate file's contents, parsed back.
type testCertificate struct {
	certPEM []byte
	key     *rsa.PrivateKey
	x5t     string
	x5tS256 string
}

func newTestCertificate(t *testing.T, notAfter time.Time) testCertificate {
	t.Helper()
	certPEM, both := NewCertificate("entraauth test", time.Now().Add(-time.Hour), notAfter)
	c := testCertificate{certPEM: certPEM}
	// Not "for rest := ...; ; { b, rest = pem.Decode(rest)": Yaegi v0.16.1
	// does not see rest change and loops forever.
	rest := both
	for {
		b, next := pem.Decode(rest)
		rest = next
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			c.key = k.(*rsa.PrivateKey)
		case "CERTIFICATE":
			s1 := sha1.Sum(b.Bytes)
			s256 := sha256.Sum256(b.Bytes)
			c.x5t = base64.RawURLEncoding.EncodeToString(s1[:])
			c.x5tS256 = base64.RawURLEncoding.EncodeToString(s256[:])
		}
	}
	if c.key == nil || c.x5t == "" {
		t.Fatal("NewCertificate: no key or certificate")
	}
	return c
}

func TestCertificateAssertionsAreCheckedAsEntraIDDoes(t *testing.T) {
	ten := newTestTenant(t, Options{})
	alice := ten.Users[0].PreferredUsername
	endpoint := ten.URL + "/" + ten.TenantID + "/oauth2/v2.0/token"
	good := newTestCertificate(t, time.Now().Add(365*24*time.Hour))
	notUploaded := newTestCertificate(t, time.Now().Add(365*24*time.Hour))
	expired := newTestCertificate(t, time.Now().Add(-time.Minute))
	for _, c := range []testCertificate{good, expired} {
		if _, err := ten.UploadCertificate(ten.ClientID, c.certPEM); err != nil {
			t.Fatal(err)
		}
	}
	claims := func(change map[string]interface{}) map[string]interface{} {
		now := time.Now()
		c := map[string]interface{}{"aud": endpoint, "iss": ten.ClientID, "sub": ten.ClientID, "jti": newGUID(), "nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		for k, v := range change {
			c[k] = v
		}
		return c
	}
	ps256 := func(c testCertificate, header map[string]interface{}, change map[string]interface{}) string {
		if header == nil {
			header = map[string]interface{}{"typ": "JWT", "x5t#S256": c.x5tS256}
		}
		s, err := jwt.SignPS256(c.key, header, claims(change))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rs256 := func(c testCertificate) string {
		s, err := jwt.SignWithHeader(c.key, map[string]interface{}{"alg": "RS256", "typ": "JWT", "x5t": c.x5t}, claims(nil))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	replayed := ps256(good, nil, nil)
	tests := []struct {
		name      string
		assertion string
		status    int
		code      string
	}{
		{"PS256 with x5t#S256 passes", ps256(good, nil, nil), http.StatusOK, ""},
		{"RS256 with x5t (the older form) passes", rs256(good), http.StatusOK, ""},
		{"an assertion for another token endpoint is refused", ps256(good, nil, map[string]interface{}{"aud": "https://login.microsoftonline.com/" + ten.TenantID + "/oauth2/v2.0/token"}), http.StatusUnauthorized, "AADSTS700027"},
		{"a certificate not uploaded is refused", ps256(notUploaded, nil, nil), http.StatusUnauthorized, "AADSTS700027"},
		{"a key that is not the certificate's is refused", ps256(testCertificate{key: notUploaded.key, x5tS256: good.x5tS256}, nil, nil), http.StatusUnauthorized, "AADSTS700027"},
		{"no thumbprint is refused", ps256(good, map[string]interface{}{"typ": "JWT"}, nil), http.StatusUnauthorized, "AADSTS700027"},
		{"an expired assertion is refused", ps256(good, nil, map[string]interface{}{"exp": time.Now().Add(-time.Minute).Unix()}), http.StatusUnauthorized, "AADSTS700024"},
		{"an assertion valid only later is refused", ps256(good, nil, map[string]interface{}{"nbf": time.Now().Add(time.Hour).Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()}), http.StatusUnauthorized, "AADSTS700024"},
		{"a certificate that expired is refused", ps256(expired, nil, nil), http.StatusUnauthorized, "AADSTS700027"},
		{"an assertion without jti is refused", ps256(good, nil, map[string]interface{}{"jti": ""}), http.StatusBadRequest, "AADSTS50027"},
		{"an assertion is accepted once", replayed, http.StatusOK, ""},
		{"a replayed assertion is refused", replayed, http.StatusUnauthorized, "AADSTS7000274"},
	}
	for _, tt := range tests {
		a := postToken(t, ten, assertionForm(ten, newCode(t, ten, alice, nil), tt.assertion), "", "")
		if a.status != tt.status {
			t.Errorf("%s: status %d, want %d: %v", tt.name, a.status, tt.status, a.doc)
			continue
		}
		if tt.code != "" {
			checkEntraError(t, a.doc, "invalid_"+map[bool]string{true: "request", false: "client"}[tt.status == http.StatusBadRequest], tt.code)
		}
	}

	thumb, _ := ten.UploadCertificate(ten.ClientID, notUploaded.certPEM)
	if a := postToken(t, ten, assertionForm(ten, newCode(t, ten, alice, nil), ps256(notUploaded, nil, nil)), "", ""); a.status != http.StatusOK {
		t.Errorf("an uploaded certificate: status %d %v", a.status, a.doc)
	}
	ten.RemoveCertificate(ten.ClientID, thumb)
	if a := postToken(t, ten, assertionForm(ten, newCode(t, ten, alice, nil), ps256(notUploaded, nil, nil)), "", ""); a.status != http.StatusUnauthorized {
		t.Errorf("a removed certificate: status %d", a.status)
	}
}
