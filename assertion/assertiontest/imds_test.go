package assertiontest_test

import (
	"net/http"
	"reflect"
	"sort"
	"testing"

	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

func TestIMDS(t *testing.T) {
	const query = "?api-version=2018-02-01&resource=api://AzureADTokenExchange"
	metadata := map[string]string{"Metadata": "true"}
	tests := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		assign  []string
		status  int
		message string
	}{
		{name: "a valid request gets a token", method: "GET", path: assertiontest.IMDSTokenPath + query, header: metadata, status: 200},
		{name: "a user-assigned identity gets a token", method: "GET", path: assertiontest.IMDSTokenPath + query + "&client_id=uami",
			header: metadata, assign: []string{"uami"}, status: 200},
		{name: "without Metadata: true it answers 400", method: "GET", path: assertiontest.IMDSTokenPath + query,
			status: 400, message: "Required metadata header not specified"},
		{name: "Metadata: false is refused too", method: "GET", path: assertiontest.IMDSTokenPath + query,
			header: map[string]string{"Metadata": "false"}, status: 400, message: "Required metadata header not specified"},
		{name: "a proxied request is refused", method: "GET", path: assertiontest.IMDSTokenPath + query,
			header: map[string]string{"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}, status: 400},
		{name: "POST is refused", method: "POST", path: assertiontest.IMDSTokenPath + query, header: metadata, status: 405},
		{name: "api-version is required", method: "GET", path: assertiontest.IMDSTokenPath + "?resource=r", header: metadata,
			status: 400, message: "Required query variable 'api-version' is missing"},
		{name: "an unknown api-version is refused", method: "GET", path: assertiontest.IMDSTokenPath + "?api-version=2030-01-01&resource=r",
			header: metadata, status: 400},
		{name: "resource is required", method: "GET", path: assertiontest.IMDSTokenPath + "?api-version=2018-02-01", header: metadata,
			status: 400, message: "Required query variable 'resource' is missing"},
		{name: "an identity not assigned is not found", method: "GET", path: assertiontest.IMDSTokenPath + query + "&client_id=other",
			header: metadata, assign: []string{"uami"}, status: 400, message: "Identity not found"},
		{name: "another path is not found", method: "GET", path: "/metadata/instance" + query, header: metadata, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := assertiontest.NewIMDS()
			defer srv.Close()
			if tt.assign != nil {
				srv.AssignIdentities(tt.assign...)
			}
			status, _, body := call(t, tt.method, srv.URL+tt.path, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.message != "" && (body["error"] != "invalid_request" || body["error_description"] != tt.message) {
				t.Errorf("body %v, want error_description %q", body, tt.message)
			}
			if status == 200 {
				var keys []string
				for k, v := range body {
					keys = append(keys, k)
					if _, ok := v.(string); !ok {
						t.Errorf("%s = %v is not a string", k, v)
					}
				}
				sort.Strings(keys)
				want := []string{"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"}
				if !reflect.DeepEqual(keys, want) {
					t.Errorf("fields %v, want %v", keys, want)
				}
			}
		})
	}
}

func TestIMDSFailsOnDemand(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.FailNext(404, 0, 429, 503)
	url := srv.URL + assertiontest.IMDSTokenPath + "?api-version=2018-02-01&resource=r"
	var got []int
	for i := 0; i < 5; i++ {
		status, header, body := call(t, http.MethodGet, url, map[string]string{"Metadata": "true"})
		got = append(got, status)
		if status == 429 && header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		if status >= 400 && body["error"] == nil {
			t.Errorf("%d without an IMDS error body", status)
		}
	}
	if want := []int{404, 200, 429, 503, 200}; !reflect.DeepEqual(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

func TestIMDSSendsNumbersOnDemand(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	srv.SetNumericExpiry(true)
	_, _, body := call(t, http.MethodGet, srv.URL+assertiontest.IMDSTokenPath+"?api-version=2018-02-01&resource=r",
		map[string]string{"Metadata": "true"})
	for _, k := range []string{"expires_in", "expires_on", "not_before"} {
		if _, ok := body[k].(float64); !ok {
			t.Errorf("%s = %v, want a number", k, body[k])
		}
	}
	if srv.Getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST") != srv.URL {
		t.Errorf("Getenv does not point at the fake")
	}
}
