package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// A 401 or a 302 rather than a 404 proves that Traefik loaded the plugin
// and that the middleware guards the router: a plugin that fails to load
// leaves the router answering 404.
func TestTraefikLoadsThePluginAndItGuardsTheRouter(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)

	api := e.client.do(e.client.request(http.MethodGet, e.traefik.url(appHost, "/"), apiHeader()))
	if api.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated API call: got %s, want 401: %.300s", api.Status, api.body)
	}

	nav := e.client.visit(e.traefik.url(appHost, "/"))
	if nav.StatusCode != http.StatusFound || !strings.HasPrefix(nav.location(), e.tenant.URL+"/") {
		t.Fatalf("unauthenticated navigation: got %s to %q, want 302 to the tenant %s", nav.Status, nav.location(), e.tenant.URL)
	}

	// No plugin network I/O before the first request needs it (SPEC 1):
	// loading Traefik must not have contacted the tenant's token endpoint.
	if n := e.tenant.Hits("token"); n != 0 {
		t.Errorf("token endpoint hit %d times before any sign-in", n)
	}
}
