package entraid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// manyGroups returns n distinct group object IDs.
func manyGroups(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	return out
}

func graphFixture(t *testing.T, groups int) *fixture {
	t.Helper()
	return newFixture(t, entraidtest.Options{Users: []entraidtest.User{{
		OID: "6c1e3d5a-7b8f-4a2e-9d1c-0b2a3c4d5e6f", Name: "Alice", PreferredUsername: "alice@contoso.example",
		Groups: manyGroups(groups),
	}}}, nil)
}

func TestGroupMembershipsFollowsPagingAndSkipsOtherObjects(t *testing.T) {
	f := graphFixture(t, 250)
	f.tenant.SetGraphPageSize(100)
	got, err := f.client.GroupMemberships(context.Background(), f.tenant.GraphAccessToken("alice@contoso.example"))
	if err != nil {
		t.Fatal(err)
	}
	want := manyGroups(250)
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("group %d = %s, want %s", i, got[i], want[i])
		}
	}
	if hits := f.tenant.Hits(entraidtest.Graph); hits != 3 {
		t.Errorf("%d Graph requests for 251 objects in pages of 100, want 3", hits)
	}
}

func TestGroupMembershipsStopsAtThePageBound(t *testing.T) {
	f := graphFixture(t, maxGraphPages+5)
	f.tenant.SetGraphPageSize(1)
	_, err := f.client.GroupMemberships(context.Background(), f.tenant.GraphAccessToken("alice@contoso.example"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable for too many pages", err)
	}
	if hits := f.tenant.Hits(entraidtest.Graph); hits != maxGraphPages {
		t.Errorf("%d Graph requests, want the bound %d", hits, maxGraphPages)
	}
}

func TestGroupMembershipsErrors(t *testing.T) {
	t.Run("a refused token is Graph's error", func(t *testing.T) {
		f := graphFixture(t, 3)
		_, err := f.client.GroupMemberships(context.Background(), "not-a-token")
		e, ok := err.(*Error)
		if !ok || e.StatusCode != http.StatusUnauthorized || e.Code != "InvalidAuthenticationToken" || e.TraceID == "" {
			t.Fatalf("err = %#v, want Graph's 401 InvalidAuthenticationToken with its request ID", err)
		}
	})
	t.Run("no access token", func(t *testing.T) {
		f := graphFixture(t, 3)
		if _, err := f.client.GroupMemberships(context.Background(), ""); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("a 5xx with Graph's error body keeps Graph's code and request ID", func(t *testing.T) {
		f := graphFixture(t, 3)
		f.tenant.SetFault(entraidtest.Graph, entraidtest.Fault{Status: http.StatusServiceUnavailable,
			Body: `{"error":{"code":"serviceNotAvailable","message":"The service is temporarily unavailable.","innerError":{"date":"2026-12-01T05:00:00","request-id":"1f0c3a9e-7d2b-4c5e-9a8f-0b1c2d3e4f5a","client-request-id":"1f0c3a9e-7d2b-4c5e-9a8f-0b1c2d3e4f5a"}}}`})
		_, err := f.client.GroupMemberships(context.Background(), f.tenant.GraphAccessToken("alice@contoso.example"))
		e, ok := err.(*Error)
		if !ok || e.StatusCode != http.StatusServiceUnavailable || e.Code != "serviceNotAvailable" || e.TraceID != "1f0c3a9e-7d2b-4c5e-9a8f-0b1c2d3e4f5a" {
			t.Fatalf("err = %#v, want Graph's 503 serviceNotAvailable with its request ID", err)
		}
		if !strings.HasPrefix(e.Error(), "entraid: Microsoft Graph: serviceNotAvailable") {
			t.Errorf("Error() = %q", e.Error())
		}
	})
	t.Run("an outage is ErrUnavailable", func(t *testing.T) {
		f := graphFixture(t, 3)
		f.tenant.SetFault(entraidtest.Graph, entraidtest.Fault{Status: http.StatusServiceUnavailable})
		_, err := f.client.GroupMemberships(context.Background(), f.tenant.GraphAccessToken("alice@contoso.example"))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("garbage is ErrUnavailable", func(t *testing.T) {
		f := graphFixture(t, 3)
		f.tenant.SetFault(entraidtest.Graph, entraidtest.Fault{Status: http.StatusOK, Body: "{not json"})
		_, err := f.client.GroupMemberships(context.Background(), f.tenant.GraphAccessToken("alice@contoso.example"))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
}

func TestGraphBaseFollowsTheCloud(t *testing.T) {
	// Every authority host the configuration accepts maps to its own
	// cloud's Graph: the access token of a sign-in never goes elsewhere.
	for authority, want := range map[string]string{
		"https://login.microsoftonline.com":        "https://graph.microsoft.com",
		"https://login.microsoft.com":              "https://graph.microsoft.com",
		"https://login.windows.net":                "https://graph.microsoft.com",
		"https://LOGIN.microsoftonline.com/":       "https://graph.microsoft.com",
		"https://login.microsoftonline.us":         "https://graph.microsoft.us",
		"https://login.usgovcloudapi.net":          "https://graph.microsoft.us",
		"https://login.partner.microsoftonline.cn": "https://microsoftgraph.chinacloudapi.cn",
		"https://login.chinacloudapi.cn":           "https://microsoftgraph.chinacloudapi.cn",
		"http://127.0.0.1:8080":                    "http://127.0.0.1:8080",
		"https://localhost:8443":                   "https://localhost:8443",
	} {
		c, err := NewClient(Config{AuthorityHost: authority, Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc", Credential: ClientSecret("x")})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.graphBase(nil); got != want {
			t.Errorf("graphBase for %s = %s, want %s", authority, got, want)
		}
	}
	for _, host := range []string{"https://login.microsoftonline.com", "https://login.windows.net", "https://login.microsoftonline.us"} {
		if _, err := NewClient(Config{AuthorityHost: host, Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc", Credential: ClientSecret("x")}); err != nil {
			t.Fatal(err)
		}
		if c := cloudOf(host); c == nil || !c.graphHosts[strings.TrimPrefix(c.graph, "https://")] {
			t.Errorf("the default Graph of %s is not among its cloud's Graph hosts", host)
		}
	}
}

func TestGraphBaseTakesTheTenantsGraphOnlyWithinItsCloud(t *testing.T) {
	us, err := NewClient(Config{AuthorityHost: "https://login.microsoftonline.us", Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc", Credential: ClientSecret("x")})
	if err != nil {
		t.Fatal(err)
	}
	if got := us.graphBase(&Metadata{GraphHost: "dod-graph.microsoft.us"}); got != "https://dod-graph.microsoft.us" {
		t.Errorf("a DoD tenant's Graph: %s", got)
	}
	// Discovery's msgraph_host is kept only when it is one of the cloud's.
	for _, tc := range []struct{ announced, want string }{
		{"dod-graph.microsoft.us", "dod-graph.microsoft.us"},
		{"Graph.Microsoft.US", "graph.microsoft.us"},
		{"graph.microsoft.com", ""},
		{"graph.attacker.example", ""},
		{"", ""},
	} {
		if got := us.announcedGraphHost(tc.announced); got != tc.want {
			t.Errorf("msgraph_host %q kept as %q, want %q", tc.announced, got, tc.want)
		}
	}
}
