package assertion

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

const certClientID = "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc"

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pemBlocks splits a PEM file into its certificate and key blocks.
func pemBlocks(t *testing.T, data []byte) (cert, key *pem.Block) {
	t.Helper()
	// Not "for rest := ...; ; { b, rest = pem.Decode(rest)": Yaegi v0.16.1
	// does not see rest change and loops forever.
	rest := data
	for {
		b, next := pem.Decode(rest)
		rest = next
		if b == nil {
			return cert, key
		}
		if b.Type == "CERTIFICATE" {
			cert = b
		} else {
			key = b
		}
	}
}

func TestNewCertificateSaysWhatIsWrongWithTheFile(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	certPEM, both := entraidtest.NewCertificate("ok", time.Now().Add(-time.Hour), year)
	_, otherBoth := entraidtest.NewCertificate("other", time.Now().Add(-time.Hour), year)
	_, expired := entraidtest.NewCertificate("expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	_, future := entraidtest.NewCertificate("future", time.Now().Add(24*time.Hour), year)
	certBlock, keyBlock := pemBlocks(t, both)
	_, otherKey := pemBlocks(t, otherBoth)
	k, _ := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))})
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallTmpl := &x509.Certificate{SerialNumber: certSerial(), NotBefore: time.Now().Add(-time.Hour), NotAfter: year}
	smallDER, _ := x509.CreateCertificate(rand.Reader, smallTmpl, smallTmpl, &small.PublicKey, small)
	smallPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: smallDER}), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})...)
	// What openssl pkcs12 -nodes writes: bag attributes before each block.
	openssl := []byte("Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=CN = ok\n" + string(pem.EncodeToMemory(certBlock)) +
		"Bag Attributes\n    localKeyID: 01 00 00 00\nKey Attributes: <No Attributes>\n" + string(pem.EncodeToMemory(keyBlock)))

	tests := []struct {
		name string
		data []byte // nil: no file
		want string // "" means accepted
	}{
		{"the certificate and a PKCS#8 key", both, ""},
		{"the key and a PKCS#1 key after the certificate", append(append([]byte{}, certPEM...), pkcs1...), ""},
		{"what openssl pkcs12 -nodes writes", openssl, ""},
		{"a chain with the certificate second", append(append(pem.EncodeToMemory(otherBlockCert(t, otherBoth)), pem.EncodeToMemory(certBlock)...), pem.EncodeToMemory(keyBlock)...), ""},
		{"a missing file", nil, "cannot read"},
		{"an empty file", []byte{}, "no PEM certificate and no private key"},
		{"the certificate alone", certPEM, "holds no private key"},
		{"the key alone", pem.EncodeToMemory(keyBlock), "no certificate"},
		{"a key of another certificate", append(append([]byte{}, certPEM...), pem.EncodeToMemory(otherKey)...), "does not match the certificate"},
		{"an expired certificate", expired, "expired on"},
		{"a certificate not yet valid", future, "not valid before"},
		{"an encrypted key", append(append([]byte{}, certPEM...), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})...), "-nodes"},
		{"an EC key", append(append([]byte{}, certPEM...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})...), "RSA"},
		{"a 1024-bit key", smallPEM, "at least 2048"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "missing.pem")
			if tt.data != nil {
				path = writeTemp(t, "cert.pem", tt.data)
			}
			_, err := NewCertificate(path, certClientID, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want the path and %q", err, tt.want)
			}
		})
	}
}

func otherBlockCert(t *testing.T, data []byte) *pem.Block {
	c, _ := pemBlocks(t, data)
	return c
}

func certSerial() *big.Int {
	return big.NewInt(7)
}

// thumbprintS256 is the x5t#S256 of the certificate in a PEM file.
func thumbprintS256(t *testing.T, data []byte) string {
	c, _ := pemBlocks(t, data)
	sum := sha256.Sum256(c.Bytes)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestCertificateAssertionsAreWhatEntraIDAsksFor(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	certPEM, both := entraidtest.NewCertificate("ok", now.Add(-time.Hour), now.Add(48*time.Hour))
	path := writeTemp(t, "cert.pem", both)
	c, err := NewCertificate(path, certClientID, clock)
	if err != nil {
		t.Fatal(err)
	}
	const endpoint = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
	first, err := c.Sign(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pemBlocks(t, certPEM)
	cert, _ := x509.ParseCertificate(block.Bytes)
	if err := tok.VerifyPS256(cert.PublicKey.(*rsa.PublicKey)); err != nil {
		t.Errorf("PS256 signature by the certificate's key: %v", err)
	}
	if tok.Header.X5tS256 != thumbprintS256(t, certPEM) || tok.Header.X5t == "" || tok.Header.Typ != "JWT" {
		t.Errorf("header %+v, want typ JWT, x5t#S256 of the certificate and x5t", tok.Header)
	}
	exp, _ := tok.Time("exp")
	nbf, _ := tok.Time("nbf")
	if tok.String("aud") != endpoint || tok.String("iss") != certClientID || tok.String("sub") != certClientID ||
		len(tok.String("jti")) != 36 || !nbf.Equal(time.Unix(now.Unix(), 0)) || exp.Sub(nbf) != 10*time.Minute {
		t.Errorf("claims %v", tok.Claims)
	}
	second, _ := c.Sign(context.Background(), endpoint)
	tok2, _ := jwt.Parse(second)
	if tok2.String("jti") == tok.String("jti") {
		t.Error("two assertions share a jti: Entra ID refuses a replayed one")
	}

	// Renewal: a new certificate in the file is used from the next
	// assertion on, without a new Certificate.
	renewedPEM, renewed := entraidtest.NewCertificate("renewed", now.Add(-time.Hour), now.Add(400*24*time.Hour))
	if err := os.WriteFile(path, renewed, 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := c.Sign(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	tok3, _ := jwt.Parse(third)
	if tok3.Header.X5tS256 != thumbprintS256(t, renewedPEM) || !c.NotAfter().Equal(now.Add(400*24*time.Hour).Truncate(time.Second).UTC()) {
		t.Errorf("after renewal: x5t#S256 %s, NotAfter %s: the new certificate was not read", tok3.Header.X5tS256, c.NotAfter())
	}

	// A file that turns bad is an error naming it, not the old key.
	if err := os.WriteFile(path, renewedPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sign(context.Background(), endpoint); err == nil || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no private key") {
		t.Errorf("a file without its key: err = %v", err)
	}

	// A certificate that expires while in use stops signing.
	if err := os.WriteFile(path, both, 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(49 * time.Hour)
	if _, err := c.Sign(context.Background(), endpoint); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired certificate: err = %v", err)
	}
}

// TestTheFakeTenantAcceptsTheAssertions posts what Sign makes to the fake
// tenant, which checks it as Entra ID does.
func TestTheFakeTenantAcceptsTheAssertions(t *testing.T) {
	ten := entraidtest.NewTenant(entraidtest.Options{})
	defer ten.Close()
	certPEM, both := entraidtest.NewCertificate("ok", time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour))
	if _, err := ten.UploadCertificate(ten.ClientID, certPEM); err != nil {
		t.Fatal(err)
	}
	c, err := NewCertificate(writeTemp(t, "cert.pem", both), ten.ClientID, nil)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := ten.URL + "/" + ten.TenantID + "/oauth2/v2.0/token"
	post := func(assertion string) (int, string) {
		resp, err := http.PostForm(endpoint, url.Values{
			"grant_type": {"authorization_code"}, "client_id": {ten.ClientID}, "code": {"not-a-code"},
			"redirect_uri":          {"https://app.example/portals/main/oauth2/callback"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	a, _ := c.Sign(context.Background(), endpoint)
	// The client is authenticated; the made-up code is what fails.
	if status, body := post(a); status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
		t.Errorf("a fresh assertion: %d %s, want the code refused (invalid_grant), not the client", status, body)
	}
	if status, body := post(a); status != http.StatusUnauthorized || !strings.Contains(body, "AADSTS7000274") {
		t.Errorf("the same assertion again: %d %s, want it refused as replayed", status, body)
	}
}
