package assertion_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

func newServiceAccountToken(t *testing.T, content string) (assertion.Source, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if content != "" {
		writeFile(t, path, content)
	}
	src, err := assertion.Parse("KubernetesServiceAccountToken="+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return src, path
}

func TestServiceAccountToken(t *testing.T) {
	exp := time.Unix(time.Now().Add(time.Hour).Unix(), 0)
	tests := []struct {
		name    string
		content string
		expires time.Time
		wantErr []string
	}{
		{name: "a projected token expires at its exp claim",
			content: assertiontest.UnsignedJWT(map[string]interface{}{"sub": "system:serviceaccount:traefik:traefik", "exp": exp.Unix()}),
			expires: exp},
		{name: "an exp sent as a string is read too",
			content: assertiontest.UnsignedJWT(map[string]interface{}{"exp": strconv.FormatInt(exp.Unix(), 10)}),
			expires: exp},
		{name: "a legacy token without exp has no known expiry",
			content: assertiontest.UnsignedJWT(map[string]interface{}{"sub": "system:serviceaccount:traefik:traefik"})},
		{name: "a trailing newline is trimmed",
			content: assertiontest.UnsignedJWT(map[string]interface{}{"exp": exp.Unix()}) + "\n",
			expires: exp},
		{name: "a missing file says what to mount",
			wantErr: []string{"assertion: Kubernetes service account token: open", "mount a projected service account token with audience api://AzureADTokenExchange"}},
		{name: "an empty file is refused",
			content: "\n\n", wantErr: []string{"is empty"}},
		{name: "a file that is not a JWT is refused",
			content: "hello", wantErr: []string{"not a JWT"}},
		{name: "a payload that is not JSON is refused",
			content: "e30.bm90IGpzb24.", wantErr: []string{"not a JWT: payload"}},
		{name: "an expired token points at the kubelet",
			content: assertiontest.UnsignedJWT(map[string]interface{}{"exp": time.Now().Add(-time.Minute).Unix()}),
			wantErr: []string{"expired at", "is the kubelet rotating it"}},
		{name: "an oversized file is refused",
			content: strings.Repeat("a", 70000), wantErr: []string{"larger than 65536 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _ := newServiceAccountToken(t, tt.content)
			tok, err := src.Fetch(context.Background())
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("Fetch succeeded")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\ndoes not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Value != strings.TrimSpace(tt.content) || !tok.Expires.Equal(tt.expires) {
				t.Errorf("got %q expiring %v, want the file's token expiring %v", tok.Value, tok.Expires, tt.expires)
			}
		})
	}
}

func TestServiceAccountTokenRereadsTheRotatedFile(t *testing.T) {
	first := assertiontest.UnsignedJWT(map[string]interface{}{"jti": "1", "exp": time.Now().Add(time.Hour).Unix()})
	src, path := newServiceAccountToken(t, first)
	clk := newClock()
	c := assertion.NewCache(src)
	c.Now = clk.Now
	ctx := context.Background()
	if got, _ := c.Assertion(ctx); got != first {
		t.Fatalf("got %q", got)
	}
	second := assertiontest.UnsignedJWT(map[string]interface{}{"jti": "2", "exp": time.Now().Add(2 * time.Hour).Unix()})
	writeFile(t, path, second)
	clk.Add(30 * time.Minute)
	if got, _ := c.Assertion(ctx); got != first {
		t.Errorf("30 min in: a new read although the first token is valid for 30 more minutes")
	}
	clk.Add(25 * time.Minute)
	if got, _ := c.Assertion(ctx); got != second {
		t.Errorf("55 min in: %q, want the rotated token", got)
	}
	if got, _ := src.Fetch(ctx); got.Value != second {
		t.Errorf("Fetch did not re-read the file")
	}
}
