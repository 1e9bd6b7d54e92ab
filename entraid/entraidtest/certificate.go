package entraidtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// Certificate credentials (private_key_jwt), as Entra ID checks them: the
// app signs a client assertion with the private key of a certificate whose
// public part is uploaded to its registration; iss and sub are its client
// ID, aud the token endpoint, the header names the certificate by
// thumbprint (x5t#S256, or x5t), the signature is PS256 or RS256, the
// lifetime is checked, and a jti is accepted once.

// uploadedCertificate is a certificate on an app registration's
// Certificates & secrets page.
type uploadedCertificate struct {
	clientID string
	key      *rsa.PublicKey
	x5t      string // base64url SHA-1 of the DER
	x5tS256  string // base64url SHA-256 of the DER
	notAfter time.Time
}

// UploadCertificate adds a certificate (PEM, as az ad app credential reset
// --cert @cert.pem takes it; a private key beside it is ignored) to the
// registration of clientID, the tenant's app or one of AddApp's; the
// certificates it had stay valid. It returns the SHA-1 thumbprint in hex.
func (t *Tenant) UploadCertificate(clientID string, certPEM []byte) (string, error) {
	var cert *x509.Certificate
	// Not "for rest := certPEM; ...; { block, rest = pem.Decode(rest)":
	// Yaegi v0.16.1 does not see rest change and loops forever.
	rest := certPEM
	for cert == nil {
		block, next := pem.Decode(rest)
		rest = next
		if block == nil {
			return "", errors.New("entraidtest: no CERTIFICATE block")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return "", fmt.Errorf("entraidtest: %v", err)
		}
		cert = c
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return "", errors.New("entraidtest: not an RSA certificate")
	}
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	u := &uploadedCertificate{
		clientID: clientID,
		key:      pub,
		x5t:      base64.RawURLEncoding.EncodeToString(s1[:]),
		x5tS256:  base64.RawURLEncoding.EncodeToString(s256[:]),
		notAfter: cert.NotAfter,
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.certificates = append(t.certificates, u)
	return fmt.Sprintf("%X", s1[:]), nil
}

// RemoveCertificate deletes the certificate with this SHA-1 thumbprint
// (hex) from clientID's registration.
func (t *Tenant) RemoveCertificate(clientID, thumbprint string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.certificates[:0]
	for _, c := range t.certificates {
		if c.clientID == clientID && strings.EqualFold(thumbprintFromX5t(c.x5t), thumbprint) {
			continue
		}
		kept = append(kept, c)
	}
	t.certificates = kept
}

func thumbprintFromX5t(x5t string) string {
	b, _ := base64.RawURLEncoding.DecodeString(x5t)
	return fmt.Sprintf("%X", b)
}

// isCertificateAssertion tells a certificate credential's assertion (iss
// and sub the client ID itself) from a federated one.
func isCertificateAssertion(tok *jwt.Token, clientID string) bool {
	return tok.String("iss") == clientID && tok.String("sub") == clientID
}

// checkCertificateAssertion verifies the assertion of clientID posted to
// endpoint (the token endpoint's URL as requested).
func (t *Tenant) checkCertificateAssertion(tok *jwt.Token, clientID, endpoint string) *stsError {
	h := tok.Header
	thumb := h.X5tS256
	if thumb == "" {
		thumb = h.X5t
	}
	if thumb == "" {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation. [Reason - The key was not found., The client assertion names no certificate: its header has neither x5t#S256 nor x5t.]")
	}
	t.mu.Lock()
	var cert *uploadedCertificate
	for _, c := range t.certificates {
		if c.clientID == clientID && (h.X5tS256 != "" && c.x5tS256 == h.X5tS256 || h.X5tS256 == "" && c.x5t == h.X5t) {
			cert = c
		}
	}
	t.mu.Unlock()
	if cert == nil {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '"+thumbprintOf(h)+"', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '"+clientID+"'.]")
	}
	var err error
	switch h.Alg {
	case "PS256":
		err = tok.VerifyPS256(cert.key)
	case "RS256":
		err = tok.VerifyRS256(cert.key)
	default:
		err = errors.New("alg")
	}
	if err != nil {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation.")
	}
	now := t.now()
	if !now.Before(cert.notAfter) {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700027, "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '"+thumbprintOf(h)+"', Found key 'Start=..., End="+cert.notAfter.UTC().Format("01/02/2006 15:04:05")+"'.]")
	}
	exp, ok := tok.Time("exp")
	nbf, hasNbf := tok.Time("nbf")
	if !ok || !now.Before(exp) || hasNbf && now.Before(nbf.Add(-5*time.Minute)) {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.", now.UTC().Format(time.RFC3339), nbf.UTC().Format(time.RFC3339), exp.UTC().Format(time.RFC3339)))
	}
	aud := tok.Strings("aud")
	if len(aud) != 1 || !t.isTokenEndpoint(aud[0], endpoint) {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation. [Reason - The audience '"+strings.Join(aud, ",")+"' is not the token endpoint '"+endpoint+"'.]")
	}
	jti := tok.String("jti")
	if jti == "" {
		return stsErr(http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed: the client assertion has no jti.")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, used := t.usedJTIs[jti]; used {
		// The code Entra ID uses for a replayed assertion is not
		// documented; the message is what matters to a test.
		return stsErr(http.StatusUnauthorized, "invalid_client", 7000274, "The client assertion's jti '"+jti+"' was already used: a client assertion is accepted once.")
	}
	t.usedJTIs[jti] = exp
	for k, e := range t.usedJTIs {
		if now.After(e) {
			delete(t.usedJTIs, k)
		}
	}
	return nil
}

// isTokenEndpoint reports whether aud names this tenant's token endpoint:
// the one requested, or its form with the tenant ID.
func (t *Tenant) isTokenEndpoint(aud, endpoint string) bool {
	return aud == endpoint || aud == t.URL+"/"+t.TenantID+"/oauth2/v2.0/token"
}

// thumbprintOf is the thumbprint an assertion names, SHA-1 (what the
// portal shows) when it has one.
func thumbprintOf(h jwt.Header) string {
	if h.X5t != "" {
		return thumbprintFromX5t(h.X5t)
	}
	b, _ := base64.RawURLEncoding.DecodeString(h.X5tS256)
	return fmt.Sprintf("%X", b)
}

// NewCertificate makes a self-signed RSA certificate valid from notBefore
// to notAfter, as `openssl req -x509` does, and returns the certificate
// alone (to upload: certificate PEM) and the certificate with its private
// key (PKCS#8, the file the plugin reads).
func NewCertificate(commonName string, notBefore, notAfter time.Time) ([]byte, []byte) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: commonName}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	// No named results: Yaegi v0.16.1 returned the second value for both.
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	both := append(append([]byte{}, keyPEM...), certPEM...)
	return certPEM, both
}
