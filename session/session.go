// Package session keeps a signed-in user's session in sealed, chunked cookies.
//
// A Sealer encrypts and authenticates a value (AES-256-GCM, keys derived from
// configured secrets, with rotation); Session is what the plugin stores; the
// chunked cookie functions spread a value that outgrows one cookie over
// several.
package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Session is what the session cookie holds: only what authorization and
// headers need, and the refresh token that renews it (never an access or ID
// token), so that a user in hundreds of groups still fits in a few cookies.
//
// The JSON keys are one or two letters because every byte is paid for in
// every request's Cookie header.
type Session struct {
	// ID names the sign-in behind the session, random, kept through
	// renewals: what a sign-out remembers (by a digest) to refuse every
	// copy of the session afterwards.
	ID                string   `json:"id,omitempty"`
	OID               string   `json:"o,omitempty"`
	TID               string   `json:"t,omitempty"`
	Name              string   `json:"n,omitempty"`
	PreferredUsername string   `json:"u,omitempty"`
	Email             string   `json:"e,omitempty"`
	Roles             []string `json:"r,omitempty"`
	Groups            []string `json:"g,omitempty"`
	// GroupsPending is set when the token had a groups overage that the
	// middleware which signed the user in did not resolve (it has no group
	// rules); a middleware that needs groups signs the user in again.
	GroupsPending bool `json:"gp,omitempty"`
	// Claims holds further claims that configured headers name, as the
	// header values they become (lists comma-joined).
	Claims map[string]string `json:"c,omitempty"`
	// IssuedAt is when the session was issued or last renewed: it is
	// trusted for the middleware's lifetime from then on.
	IssuedAt int64 `json:"i,omitempty"` // unix seconds
	// AuthTime is when the user last signed in interactively: renewals go
	// on for the middleware's maxLifetime from then on.
	AuthTime int64 `json:"a,omitempty"` // unix seconds
	Expires  int64 `json:"x,omitempty"` // unix seconds
	// RefreshToken is Entra ID's refresh token, with which the plugin
	// renews the session; opaque, sealed like the rest, never logged, never
	// sent anywhere but to Entra ID's token endpoint.
	RefreshToken string `json:"rt,omitempty"`
	// StepUpAt is when the user last signed in to satisfy an API's
	// Conditional Access (a step-up): another refusal soon after is shown,
	// not answered with another sign-in.
	StepUpAt int64 `json:"su,omitempty"` // unix seconds
}

// AAD is the additional data a session is sealed under: the cookie that
// carries it and the app registration that issued it, named by its
// authority host, its tenant as configured and its client ID. A sealed
// session opens only under the same AAD, so a middleware never opens a
// session of another app, cloud or tenant configuration, whatever secret
// and cookie name the two share: binding by construction, with no byte
// added to the cookie.
func AAD(cookieName, authorityHost, tenant, clientID string) string {
	return cookieName + "\x00" + strings.ToLower(authorityHost) + "\x00" + strings.ToLower(tenant) + "\x00" + strings.ToLower(clientID)
}

// Marshal encodes the session as compact JSON, to be sealed.
func (s *Session) Marshal() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("session: marshal: %v", err)
	}
	return b, nil
}

// Unmarshal decodes what Marshal produced. Anything that is not a JSON object
// of the expected shape is an error wrapping ErrInvalid.
func Unmarshal(b []byte) (*Session, error) {
	// json.Unmarshal accepts null (and leaves the zero Session), which no
	// Marshal produces.
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	s := &Session{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s, nil
}
