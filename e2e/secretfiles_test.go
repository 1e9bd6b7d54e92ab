package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// Secrets from files, as the readme recommends: written the way `kubectl
// create secret` and editors write them, with a trailing newline, and
// replaced the way the kubelet replaces a mounted secret, by renaming a new
// file over the old one.

// replaceFile swaps content in at path atomically.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	writeFile(t, tmp, []byte(content))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestClientSecretFileSignsInAndARotatedSecretTakesEffectWithoutAReload(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	secretFile := filepath.Join(t.TempDir(), "entra-client-secret")
	writeFile(t, secretFile, []byte(tenant.ClientSecret+"\n"))
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		entra := entraSettings(pc)
		delete(entra, "clientSecret")
		entra["clientSecretFile"] = secretFile
	}})
	dyn, err := os.ReadFile(e.traefik.dynFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dyn), tenant.ClientSecret) {
		t.Fatal("the client secret is in Traefik's configuration")
	}
	app := e.traefik.url(appHost, "/")
	revision := e.traefik.revision

	signIn := func(name string) {
		t.Helper()
		c := newClient(t, e.certs)
		if got := c.signIn(app).Header.Get("X-Forwarded-User"); got != alice.OID {
			t.Fatalf("%s: X-Forwarded-User = %q, want %q", name, got, alice.OID)
		}
	}
	// The file ends in a newline that is not part of the secret: the
	// tenant refuses a secret with one.
	signIn("with the secret file's first content")

	// Rotation as Entra ID and Kubernetes do it: a new secret is added to
	// the app registration (both valid for a while), and the old one is
	// deleted before the mounted file has caught up.
	rotated := tenant.AddClientSecret()
	tenant.RemoveClientSecret(tenant.ClientSecret)
	resp, hops := newClient(t, e.certs).navigate(app)
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(resp.body), "AADSTS7000215") {
		t.Fatalf("with a deleted secret still in the file, the sign-in via %v ended with %s: %.300s; want Entra's refusal", hopURLs(hops), resp.Status, resp.body)
	}
	// The kubelet swaps the file in; the next sign-in reads it.
	replaceFile(t, secretFile, rotated+"\n")
	tokens := tenant.Hits(entraidtest.Token)
	signIn("after the file was rotated, without a reload")
	if n := tenant.Hits(entraidtest.Token) - tokens; n != 1 {
		t.Errorf("the sign-in after the rotation redeemed %d codes, want 1", n)
	}
	if e.traefik.revision != revision {
		t.Fatal("the configuration was reloaded: the test proves nothing")
	}
}

// The session secret file is read when Traefik loads the configuration
// (the readme says so): rotating it takes a configuration change, with the
// old secret in previousSecrets, like an inline secret.
func TestSessionSecretFileSealsSessionsAndRotatesWithAReload(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	secretFile := filepath.Join(t.TempDir(), "entraauth-session-secret")
	const rotated = "the-rotated-session-secret-0123456789-qrstuvwxyz"
	writeFile(t, secretFile, []byte(sessionSecret+"\n"))
	withFile := func(previous ...string) func(pc map[string]interface{}) {
		return func(pc map[string]interface{}) {
			s := sessionSettings(pc)
			delete(s, "secret")
			s["secretFile"] = secretFile
			if len(previous) > 0 {
				s["previousSecrets"] = previous
			}
		}
	}
	e := newGuardedEnv(t, tenant, guard{appHost, withFile()})
	app := e.traefik.url(appHost, "/")
	api := e.traefik.url(appHost, "/api")
	first := newClient(t, e.certs)
	first.signIn(app)
	if !signedIn(t, first, api) {
		t.Fatal("the session sealed with the secret file does not open")
	}

	// Without a reload the file is not read again: sessions go on.
	replaceFile(t, secretFile, rotated+"\n")
	if !signedIn(t, first, api) {
		t.Fatal("a changed session secret file signed users out without a reload")
	}

	// The rotation: the new secret from the file, the old one inline in
	// previousSecrets. Sessions sealed with the file's old content open
	// with the same secret written inline, which has no newline.
	reload := func(configure func(pc map[string]interface{})) {
		t.Helper()
		pc := pluginConfig(tenant, sessionSecret)
		configure(pc)
		e.cfg.middlewares[authMiddleware+"0"] = pc
		e.traefik.reload(e.cfg)
	}
	reload(withFile(sessionSecret))
	if !signedIn(t, first, api) {
		t.Error("the old session does not open with its secret in previousSecrets")
	}
	second := newClient(t, e.certs)
	second.signIn(app)

	// Once the old secret is dropped, only sessions sealed with the new
	// one open.
	reload(withFile())
	if signedIn(t, first, api) {
		t.Error("a session sealed with the dropped secret still opens")
	}
	if !signedIn(t, second, api) {
		t.Error("the session sealed with the rotated secret file does not open")
	}
}
