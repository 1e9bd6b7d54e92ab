package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// TestACertificateSignsInAndRenewsSessionsWithoutASecret: with only
// clientCertificateFile (no secret anywhere), users sign in through Traefik
// and their sessions renew in-band; the certificate is renewed the way an
// operator does it (upload the new one, replace the file, delete the old
// one) without a reload, and sign-ins and renewals go on with the new one.
func TestACertificateSignsInAndRenewsSessionsWithoutASecret(t *testing.T) {
	t.Parallel()
	tenant := newTenant(t, alice.PreferredUsername)
	now := time.Now()
	firstPEM, first := entraidtest.NewCertificate("entraauth e2e", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	secondPEM, second := entraidtest.NewCertificate("entraauth e2e renewed", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	oldThumb, err := tenant.UploadCertificate(tenant.ClientID, firstPEM)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "entra-cert.pem")
	writeFile(t, certFile, first)
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		entra := entraSettings(pc)
		delete(entra, "clientSecret")
		entra["clientCertificateFile"] = certFile
		sessionSettings(pc)["lifetime"] = renewLifetime.String()
	}})
	dyn, err := os.ReadFile(e.traefik.dynFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dyn), tenant.ClientSecret) || strings.Contains(string(dyn), "clientSecret") {
		t.Fatal("a client secret is in Traefik's configuration")
	}
	app := e.traefik.url(appHost, "/")
	revision := e.traefik.revision

	a := &signedInClient{client: newClient(t, e.certs), at: time.Now()}
	if got := a.signIn(app).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Fatalf("X-Forwarded-User = %q", got)
	}

	// Renewal of the certificate: both are registered for a while, the
	// file is swapped (as the kubelet does), the old one is deleted.
	if _, err := tenant.UploadCertificate(tenant.ClientID, secondPEM); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, certFile, string(second))
	tenant.RemoveCertificate(tenant.ClientID, oldThumb)
	if got := newClient(t, e.certs).signIn(app).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Fatalf("after the certificate's renewal: X-Forwarded-User = %q", got)
	}

	// The session renews in-band, signed with the renewed certificate.
	waitUntil(a.at.Add(renewLifetime + 2*time.Second))
	before := tenant.Hits(entraidtest.Refresh)
	resp := a.do(a.request(http.MethodGet, e.traefik.url(appHost, "/api/items"), apiHeader()))
	if resp.StatusCode != http.StatusOK || resp.location() != "" {
		t.Fatalf("past the lifetime: %s (Location %q): %.300s", resp.Status, resp.location(), resp.body)
	}
	if findSetCookie(resp.Cookies(), sessionCookieName) == nil || tenant.Hits(entraidtest.Refresh)-before != 1 {
		t.Errorf("no renewal: %d refresh-token requests, Set-Cookie %q", tenant.Hits(entraidtest.Refresh)-before, resp.Header.Values("Set-Cookie"))
	}

	// A certificate Entra ID does not know gives Entra's code on a page.
	_, unknown := entraidtest.NewCertificate("unknown", now.Add(-time.Hour), now.Add(time.Hour))
	replaceFile(t, certFile, string(unknown))
	page, hops := newClient(t, e.certs).navigate(app)
	if page.StatusCode != http.StatusBadGateway || !strings.Contains(string(page.body), "AADSTS700027") {
		t.Errorf("with an unknown certificate the sign-in via %v ended with %s: %.300s", hopURLs(hops), page.Status, page.body)
	}
	if e.traefik.revision != revision {
		t.Fatal("the configuration was reloaded: the test proves nothing")
	}
}
