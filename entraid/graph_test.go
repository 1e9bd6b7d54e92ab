package entraid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	for authority, want := range map[string]string{
		"https://login.microsoftonline.com":        "https://graph.microsoft.com",
		"https://login.microsoftonline.us":         "https://graph.microsoft.us",
		"https://login.partner.microsoftonline.cn": "https://microsoftgraph.chinacloudapi.cn",
		"http://127.0.0.1:8080":                    "http://127.0.0.1:8080",
	} {
		c, err := NewClient(Config{AuthorityHost: authority, Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc", Credential: ClientSecret("x")})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.graphBase(); got != want {
			t.Errorf("graphBase for %s = %s, want %s", authority, got, want)
		}
	}
}
