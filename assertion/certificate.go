package assertion

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// Certificate credentials: the application proves itself with a client
// assertion it signs with the private key of a certificate whose public
// part is uploaded to its app registration (Entra ID's private_key_jwt).
// Unlike the federated sources, nothing is fetched: every token request
// gets a freshly signed assertion, with its own jti, which Entra ID may
// refuse to see twice.

// Assertion lifetime and the expiry warning.
const (
	// certificateAssertionLifetime: Entra ID wants exp "5-10 minutes after
	// nbf"; the assertion is used at once.
	certificateAssertionLifetime = 10 * time.Minute
	// ExpiryWarning is how long before the certificate expires that New
	// warns about it.
	ExpiryWarning = 30 * 24 * time.Hour
	// maxCertificateFileSize bounds the PEM file: a key and a chain of a
	// few certificates take a few kilobytes.
	maxCertificateFileSize = 256 << 10
	minRSABits             = 2048
)

// Certificate signs client assertions with the certificate and private key
// of a PEM file. The file is read on every assertion and parsed again when
// its contents changed, so that a renewed certificate (a Kubernetes secret
// updated by Key Vault's CSI driver, a file replaced by hand) takes effect
// without a reload. It is safe for concurrent use.
type Certificate struct {
	path     string
	clientID string
	now      func() time.Time

	mu     sync.Mutex
	digest [32]byte // of the file contents key came from
	key    *certificateKey
}

// certificateKey is a parsed and checked certificate file.
type certificateKey struct {
	key       *rsa.PrivateKey
	notBefore time.Time
	notAfter  time.Time
	x5t       string // base64url SHA-1 of the certificate's DER
	x5tS256   string // base64url SHA-256 of it
	// thumbprint is the SHA-1 in upper-case hex, as the Azure portal and
	// az show it.
	thumbprint string
}

// NewCertificate reads and checks the PEM file at path (the certificate,
// optionally its chain, and its RSA private key, PKCS#8 or PKCS#1, in any
// order): the errors say what is missing or wrong. clientID is the
// application the assertions name; now is the clock (nil: time.Now). It
// does no network I/O.
func NewCertificate(path, clientID string, now func() time.Time) (*Certificate, error) {
	if now == nil {
		now = time.Now
	}
	c := &Certificate{path: path, clientID: clientID, now: now}
	data, err := readCertificateFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseCertificateKey(data, now())
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	c.digest = sha256.Sum256(data)
	c.key = k
	return c, nil
}

// NotAfter returns when the certificate last read expires.
func (c *Certificate) NotAfter() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.key.notAfter
}

// Thumbprint returns the certificate's SHA-1 thumbprint in hex, as the app
// registration's Certificates & secrets page shows it.
func (c *Certificate) Thumbprint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.key.thumbprint
}

// Sign returns a fresh client assertion for audience, the token endpoint
// it is sent to: alg PS256 with the x5t#S256 and x5t thumbprints, iss and
// sub the client ID, a random jti, nbf and iat now, exp 10 minutes later.
// A file that changed is read again; one that no longer holds a valid
// certificate and key is an error that names it (wrapping ErrUnavailable).
func (c *Certificate) Sign(ctx context.Context, audience string) (string, error) {
	now := c.now()
	k, err := c.current(now)
	if err != nil {
		return "", err
	}
	if !now.Before(k.notAfter) {
		return "", fmt.Errorf("%w: certificate %s (thumbprint %s) expired on %s: create a new one and upload it to the app registration", ErrUnavailable, c.path, k.thumbprint, k.notAfter.UTC().Format(time.RFC3339))
	}
	header := map[string]interface{}{"typ": "JWT", "x5t#S256": k.x5tS256, "x5t": k.x5t}
	claims := map[string]interface{}{
		"aud": audience,
		"iss": c.clientID,
		"sub": c.clientID,
		"jti": newJTI(),
		"nbf": now.Unix(),
		"iat": now.Unix(),
		"exp": now.Add(certificateAssertionLifetime).Unix(),
	}
	s, err := jwt.SignPS256(k.key, header, claims)
	if err != nil {
		return "", fmt.Errorf("%w: certificate %s: %v", ErrUnavailable, c.path, err)
	}
	return s, nil
}

// current returns the key of the file as it is now.
func (c *Certificate) current(now time.Time) (*certificateKey, error) {
	data, err := readCertificateFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	sum := sha256.Sum256(data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if sum == c.digest {
		return c.key, nil
	}
	k, err := parseCertificateKey(data, now)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate file %s changed and %v", ErrUnavailable, c.path, err)
	}
	c.digest = sum
	c.key = k
	return k, nil
}

func readCertificateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCertificateFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if len(data) > maxCertificateFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes, not a certificate file", path, maxCertificateFileSize)
	}
	return data, nil
}

// parseCertificateKey finds the private key and the certificate that
// belongs to it among the PEM blocks of data, and checks that the
// certificate is valid at now.
func parseCertificateKey(data []byte, now time.Time) (*certificateKey, error) {
	var key *rsa.PrivateKey
	var certs []*x509.Certificate
	// Not "for rest := ...; ; { b, rest = pem.Decode(rest)": Yaegi v0.16.1
	// does not see rest change and loops forever.
	rest := data
	for {
		block, next := pem.Decode(rest)
		rest = next
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("a CERTIFICATE block does not parse: %v", err)
			}
			certs = append(certs, cert)
		case "PRIVATE KEY", "RSA PRIVATE KEY":
			if key != nil {
				return nil, errors.New("holds two private keys: keep only the certificate's")
			}
			k, err := parsePrivateKey(block)
			if err != nil {
				return nil, err
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted: export it without a password (openssl pkcs12 -in cert.pfx -out cert.pem -nodes)")
		case "EC PRIVATE KEY":
			return nil, errors.New("the private key is an EC key: Entra ID's certificate credentials here need an RSA key of at least 2048 bits")
		}
	}
	switch {
	case len(certs) == 0 && key == nil:
		return nil, errors.New("holds no PEM certificate and no private key: write the certificate and its private key in PEM (openssl pkcs12 -in cert.pfx -out cert.pem -nodes converts a .pfx)")
	case len(certs) == 0:
		return nil, errors.New("holds a private key but no certificate (-----BEGIN CERTIFICATE-----): add the certificate to the file")
	case key == nil:
		return nil, errors.New("holds no private key: the file must hold the certificate and its private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----); openssl pkcs12 -in cert.pfx -out cert.pem -nodes writes both")
	}
	var cert *x509.Certificate
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && pub.N.Cmp(key.N) == 0 && pub.E == key.E {
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, fmt.Errorf("the private key does not match the certificate (thumbprint %s): put the certificate and the key made with it in the file", thumbprintHex(certs[0].Raw))
	}
	if !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("the certificate (thumbprint %s) expired on %s: create a new one and upload it to the app registration", thumbprintHex(cert.Raw), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return nil, fmt.Errorf("the certificate (thumbprint %s) is not valid before %s: check this server's clock", thumbprintHex(cert.Raw), cert.NotBefore.UTC().Format(time.RFC3339))
	}
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	return &certificateKey{
		key:        key,
		notBefore:  cert.NotBefore,
		notAfter:   cert.NotAfter,
		x5t:        base64.RawURLEncoding.EncodeToString(s1[:]),
		x5tS256:    base64.RawURLEncoding.EncodeToString(s256[:]),
		thumbprint: thumbprintHex(cert.Raw),
	}, nil
}

func parsePrivateKey(block *pem.Block) (*rsa.PrivateKey, error) {
	var key *rsa.PrivateKey
	if block.Type == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the RSA PRIVATE KEY block does not parse: %v", err)
		}
		key = k
	} else {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the PRIVATE KEY block does not parse: %v", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the private key is a %T, not an RSA key: Entra ID's certificate credentials here need RSA, at least 2048 bits", k)
		}
		key = rk
	}
	if key.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("the RSA key has %d bits: Entra ID wants at least %d", key.N.BitLen(), minRSABits)
	}
	return key, nil
}

// thumbprintHex is the SHA-1 thumbprint as Azure shows it.
func thumbprintHex(der []byte) string {
	sum := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// newJTI returns a random (version 4) GUID.
func newJTI() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("assertion: no randomness: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
