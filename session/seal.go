package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A sealed value is, before base64url encoding:
//
//	version (1) | key id (4) | nonce (12) | AES-256-GCM(expiry (8) | plaintext) | tag (16)
//
// The version and key id travel in clear so that Open picks the key without
// trying them all, and they are authenticated as part of the GCM additional
// data together with the caller's aad. The expiry is encrypted with the
// plaintext, so it cannot be changed or read without the key.
const (
	sealVersion = 1
	keyIDSize   = 4
	headerSize  = 1 + keyIDSize
	nonceSize   = 12
	expirySize  = 8
	tagSize     = 16
	minSealed   = headerSize + nonceSize + expirySize + tagSize

	// maxEncoded bounds what Open decodes, so that an oversized cookie costs
	// nothing; it is well above MaxChunks*ChunkSize.
	maxEncoded = 64 << 10
	// maxPlaintext keeps every sealed value within maxEncoded.
	maxPlaintext = maxEncoded/4*3 - minSealed

	minSecretLength = 32

	// Domain-separation labels: the same secret may be configured elsewhere
	// (or for another purpose later), and must not yield the same key there.
	keyLabel   = "entraauth session v1: AES-256-GCM key"
	keyIDLabel = "entraauth session v1: key identifier"
)

// ErrInvalid is returned (wrapped with the reason) by Open, Unmarshal and
// ReadChunked for anything malformed, truncated, tampered with, sealed with an
// unknown secret or for another purpose.
var ErrInvalid = errors.New("session: invalid value")

// ErrExpired is returned (wrapped) by Open for an authentic value whose expiry
// has passed.
var ErrExpired = errors.New("session: value expired")

// encoding rejects non-zero trailing bits, so that every sealed value has
// exactly one encoding and changing any character makes Open fail.
var encoding = base64.RawURLEncoding.Strict()

// Sealer seals and opens values with AES-256-GCM. Keys derive from secrets
// with HMAC-SHA256. A Sealer is safe for concurrent use.
type Sealer struct {
	// keys[0] seals; every key opens.
	keys []sealKey
}

type sealKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// NewSealer returns a Sealer that seals with secret and opens values sealed
// with secret or with any of previous, so that secrets can be rotated without
// signing everyone out. Every secret must be at least 32 characters long.
func NewSealer(secret string, previous []string) (*Sealer, error) {
	if len(secret) < minSecretLength {
		return nil, fmt.Errorf("session: the secret is %d characters long, it must be at least %d characters", len(secret), minSecretLength)
	}
	for i, p := range previous {
		if len(p) < minSecretLength {
			return nil, fmt.Errorf("session: previous secret %d is %d characters long, it must be at least %d characters", i+1, len(p), minSecretLength)
		}
	}
	s := &Sealer{}
	seen := make(map[string]bool, 1+len(previous))
	for _, p := range append([]string{secret}, previous...) {
		// A secret listed twice (say, still among the previous ones after
		// being made current) would only cost a second decryption attempt.
		if seen[p] {
			continue
		}
		seen[p] = true
		k, err := newSealKey(p)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}

func newSealKey(secret string) (sealKey, error) {
	var k sealKey
	copy(k.id[:], derive(secret, keyIDLabel))
	block, err := aes.NewCipher(derive(secret, keyLabel))
	if err != nil {
		return k, fmt.Errorf("session: %v", err)
	}
	k.aead, err = cipher.NewGCM(block)
	if err != nil {
		return k, fmt.Errorf("session: %v", err)
	}
	return k, nil
}

func derive(secret, label string) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(label))
	return mac.Sum(nil)
}

// Seal encrypts and authenticates plaintext with the current secret. The
// result opens only with the same aad (name the cookie and its purpose) and
// only before expires. It is base64url without padding, safe in a cookie.
func (s *Sealer) Seal(plaintext []byte, aad string, expires time.Time) (string, error) {
	if expires.IsZero() {
		return "", errors.New("session: seal: the expiry is not set")
	}
	if len(plaintext) > maxPlaintext {
		return "", fmt.Errorf("session: seal: the plaintext is %d bytes, at most %d fit", len(plaintext), maxPlaintext)
	}
	k := s.keys[0]
	body := headerSize + nonceSize
	buf := make([]byte, body+expirySize+len(plaintext), body+expirySize+len(plaintext)+tagSize)
	buf[0] = sealVersion
	copy(buf[1:headerSize], k.id[:])
	if _, err := rand.Read(buf[headerSize:body]); err != nil {
		return "", fmt.Errorf("session: seal: %v", err)
	}
	binary.BigEndian.PutUint64(buf[body:], uint64(expires.Unix()))
	copy(buf[body+expirySize:], plaintext)
	ad := make([]byte, 0, headerSize+len(aad))
	ad = append(ad, buf[:headerSize]...)
	ad = append(ad, aad...)
	// Encrypt in place: the ciphertext replaces expiry|plaintext, the tag
	// fills the spare capacity.
	sealed := k.aead.Seal(buf[body:body], buf[headerSize:body], buf[body:], ad)
	return encoding.EncodeToString(buf[:body+len(sealed)]), nil
}

// Open authenticates and decrypts a value made by Seal with the same aad,
// using the current or a previous secret. It returns an error wrapping
// ErrInvalid for anything but an authentic value, and one wrapping ErrExpired
// for an authentic value whose expiry is not after now. It never panics.
//
// Open runs on every signed-in request, interpreted by Yaegi, where each
// statement and each call into the standard library costs: it makes one
// allocation and keeps the happy path short.
func (s *Sealer) Open(value string, aad string, now time.Time) ([]byte, error) {
	enc := len(value)
	if enc > maxEncoded {
		return nil, fmt.Errorf("%w: %d characters is too long", ErrInvalid, enc)
	}
	// The decoder skips line breaks; a sealed value never has any.
	if strings.ContainsAny(value, "\r\n") {
		return nil, fmt.Errorf("%w: line break", ErrInvalid)
	}
	// One buffer holds the encoded copy (reused for the plaintext once
	// decoded), the decoded bytes and the additional data. Unpadded base64
	// decodes to at most 3/4 of its length.
	dec := enc * 3 / 4
	buf := make([]byte, enc+dec+headerSize+len(aad))
	copy(buf, value)
	n, err := encoding.Decode(buf[enc:enc+dec], buf[:enc])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if n < minSealed {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrInvalid, n)
	}
	raw := buf[enc : enc+n]
	if raw[0] != sealVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrInvalid, raw[0])
	}
	ad := buf[enc+dec:]
	copy(ad, raw[:headerSize])
	copy(ad[headerSize:], aad)
	id := [keyIDSize]byte(raw[1:headerSize])
	tried := false
	for i := range s.keys {
		if s.keys[i].id != id {
			continue
		}
		tried = true
		// The plaintext goes where the encoded copy was, which is longer than
		// the ciphertext and no longer needed. The ciphertext stays intact,
		// so that a second key with the same id can still be tried.
		pt, err := s.keys[i].aead.Open(buf[:0:enc], raw[headerSize:headerSize+nonceSize], raw[headerSize+nonceSize:], ad)
		if err != nil {
			continue
		}
		expires := int64(binary.BigEndian.Uint64(pt))
		if now.Unix() >= expires {
			return nil, fmt.Errorf("%w at %s", ErrExpired, time.Unix(expires, 0).UTC().Format(time.RFC3339))
		}
		return pt[expirySize:len(pt):len(pt)], nil
	}
	if !tried {
		return nil, fmt.Errorf("%w: sealed with an unknown secret", ErrInvalid)
	}
	return nil, fmt.Errorf("%w: authentication failed", ErrInvalid)
}
