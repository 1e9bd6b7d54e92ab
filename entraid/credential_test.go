package entraid

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestClientSecret(t *testing.T) {
	form := url.Values{}
	if err := ClientSecret("s3cret").SetClientAuth(context.Background(), form); err != nil {
		t.Fatal(err)
	}
	if form.Get("client_secret") != "s3cret" || len(form) != 1 {
		t.Errorf("form %v", form)
	}
	if err := ClientSecret("").SetClientAuth(context.Background(), url.Values{}); err == nil {
		t.Error("an empty secret was accepted")
	}
	// Not fmt.Sprint of a Credential variable: under Yaegi v0.16.1, fmt does
	// not see the String method through another interface and prints the
	// value. Never log a Credential.
	t.Run("formatting does not show the secret", func(t *testing.T) {
		var stringer fmt.Stringer = ClientSecret("s3cret")
		cfg := Config{Credential: ClientSecret("s3cret")}
		for _, s := range []string{fmt.Sprint(ClientSecret("s3cret")), fmt.Sprint(stringer), fmt.Sprintf("%v", cfg), fmt.Sprintf("%s", ClientSecret("s3cret"))} {
			if strings.Contains(s, "s3cret") {
				t.Errorf("%q shows the secret", s)
			}
		}
	})
}

func TestClientAssertion(t *testing.T) {
	tests := []struct {
		name    string
		cred    ClientAssertion
		wantErr string
	}{
		{"sets the assertion and its type", ClientAssertion{Get: func(ctx context.Context) (string, error) { return "a.b.c", nil }}, ""},
		{"a source error is wrapped", ClientAssertion{Get: func(ctx context.Context) (string, error) { return "", errors.New("imds down") }}, "entraid: client assertion: imds down"},
		{"an empty assertion is refused", ClientAssertion{Get: func(ctx context.Context) (string, error) { return "", nil }}, "empty"},
		{"no source is refused", ClientAssertion{}, "no source"},
	}
	for _, tt := range tests {
		form := url.Values{}
		err := tt.cred.SetClientAuth(context.Background(), form)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if form.Get("client_assertion") != "a.b.c" || form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || form.Get("client_secret") != "" {
			t.Errorf("%s: form %v", tt.name, form)
		}
	}
	t.Run("the source sees the caller's context", func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(context.Background(), key{}, "v")
		var seen interface{}
		a := ClientAssertion{Get: func(ctx context.Context) (string, error) {
			seen = ctx.Value(key{})
			return "x", nil
		}}
		a.SetClientAuth(ctx, url.Values{})
		if seen != "v" {
			t.Errorf("context value %v", seen)
		}
	})
}
