package assertion

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DefaultServiceAccountTokenPath is where Kubernetes mounts a pod's default
// service account token. Its audience is the API server, so Entra ID refuses
// it unless the federated credential says otherwise: a projected token with
// audience api://AzureADTokenExchange is what works.
const DefaultServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// ServiceAccountToken sends a Kubernetes service account token, read from
// Path, as the assertion. The file is re-read on every Fetch because the
// kubelet rotates it.
type ServiceAccountToken struct {
	Path     string
	Audience string // what Entra ID expects in aud, for messages
}

// String describes the source for logs.
func (s *ServiceAccountToken) String() string {
	return "Kubernetes service account token (" + s.Path + ")"
}

// Fetch reads the token; its expiry is the JWT's exp claim (not verified).
func (s *ServiceAccountToken) Fetch(ctx context.Context) (Token, error) {
	const source = "Kubernetes service account token"
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	v, err := readTokenFile(s.Path)
	if err != nil {
		return Token{}, fmt.Errorf("assertion: %s: %v; mount a projected service account token with audience %s there", source, err, s.Audience)
	}
	claims, err := decodeClaims(v)
	if err != nil {
		return Token{}, fmt.Errorf("assertion: %s: %s: %v", source, s.Path, err)
	}
	exp, _ := claimTime(claims, "exp")
	if !exp.IsZero() && !exp.After(time.Now()) {
		return Token{}, fmt.Errorf("assertion: %s: the token in %s expired at %s; is the kubelet rotating it (projected volume)?",
			source, s.Path, exp.UTC().Format(time.RFC3339))
	}
	return Token{Value: v, Expires: exp}, nil
}

// audienceNote warns when the token in the file is not for Entra ID, the
// usual cause of AADSTS700212 with the default token.
func (s *ServiceAccountToken) audienceNote() string {
	v, err := readTokenFile(s.Path)
	if err != nil {
		return ""
	}
	claims, err := decodeClaims(v)
	if err != nil {
		return ""
	}
	aud := claimStrings(claims, "aud")
	for _, a := range aud {
		if a == s.Audience {
			return ""
		}
	}
	return fmt.Sprintf("the token in %s is for audience %q, not %s (the default service account token is for the API server): "+
		"mount a projected serviceAccountToken volume with audience %s and write KubernetesServiceAccountToken=<its path>",
		s.Path, strings.Join(aud, ","), s.Audience, s.Audience)
}
