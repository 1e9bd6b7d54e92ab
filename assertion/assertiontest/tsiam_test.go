package assertiontest_test

import (
	"net/http"
	"testing"

	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

func TestTsiam(t *testing.T) {
	const resource = "?resource=api://AzureADTokenExchange"
	ok := map[string]string{"X-Tsiam": "1"}
	tests := []struct {
		name   string
		method string
		query  string
		header map[string]string
		status int
		code   string
	}{
		{name: "a valid request gets a token", method: "POST", query: resource, header: ok, status: 200},
		{name: "audience is an alias of resource", method: "POST", query: "?audience=api://AzureADTokenExchange", header: ok, status: 200},
		{name: "any non-empty X-Tsiam is accepted", method: "POST", query: resource, header: map[string]string{"X-Tsiam": "yes"}, status: 200},
		{name: "without X-Tsiam it answers 403", method: "POST", query: resource, status: 403, code: "no_browser"},
		{name: "an Origin header answers 403", method: "POST", query: resource,
			header: map[string]string{"X-Tsiam": "1", "Origin": "https://evil.example"}, status: 403, code: "no_browser"},
		{name: "Sec-Fetch-Site answers 403", method: "POST", query: resource,
			header: map[string]string{"X-Tsiam": "1", "Sec-Fetch-Site": "cross-site"}, status: 403, code: "no_browser"},
		{name: "Sec-Fetch-Mode answers 403", method: "POST", query: resource,
			header: map[string]string{"X-Tsiam": "1", "Sec-Fetch-Mode": "cors"}, status: 403, code: "no_browser"},
		{name: "Sec-Fetch-Dest answers 403", method: "POST", query: resource,
			header: map[string]string{"X-Tsiam": "1", "Sec-Fetch-Dest": "empty"}, status: 403, code: "no_browser"},
		{name: "Sec-Fetch-User answers 403", method: "POST", query: resource,
			header: map[string]string{"X-Tsiam": "1", "Sec-Fetch-User": "?1"}, status: 403, code: "no_browser"},
		{name: "a missing resource answers 400", method: "POST", header: ok, status: 400, code: "missing_audience"},
		{name: "conflicting resource and audience answer 400", method: "POST", query: resource + "&audience=other", header: ok,
			status: 400, code: "audience_conflict"},
		{name: "an audience not allowed answers 403", method: "POST", query: "?resource=https://api.example.com", header: ok,
			status: 403, code: "audience_not_allowed"},
		{name: "GET is not allowed", method: "GET", query: resource, header: ok, status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := assertiontest.NewTsiam()
			defer srv.Close()
			status, _, body := call(t, tt.method, srv.URL+"/token"+tt.query, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.code != "" && (body["code"] != tt.code || body["message"] == nil) {
				t.Errorf("body %v, want code %q and a message", body, tt.code)
			}
			if status == 200 {
				for _, k := range []string{"access_token", "token_type", "expires_in", "expires_on", "not_before"} {
					if _, ok := body[k].(string); !ok {
						t.Errorf("%s = %v, want a string", k, body[k])
					}
				}
				if body["expires_in"] != "300" {
					t.Errorf("expires_in %v, want tsiam's default 300", body["expires_in"])
				}
			}
		})
	}
}

func TestTsiamFailsOnDemand(t *testing.T) {
	srv := assertiontest.NewTsiam()
	defer srv.Close()
	srv.FailNext(500, 400)
	for _, want := range []int{500, 400, 200} {
		status, _, body := call(t, http.MethodPost, srv.URL+"/token?resource=api://AzureADTokenExchange", map[string]string{"X-Tsiam": "1"})
		if status != want || (status != 200 && body["code"] == nil) {
			t.Errorf("status %d body %v, want %d in tsiam's error shape", status, body, want)
		}
	}
}
