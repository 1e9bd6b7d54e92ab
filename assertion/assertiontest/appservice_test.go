package assertiontest_test

import (
	"reflect"
	"sort"
	"testing"

	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

func TestAppService(t *testing.T) {
	srv := assertiontest.NewAppService()
	defer srv.Close()
	srv.AssignIdentities("uami")
	endpoint := srv.Getenv("IDENTITY_ENDPOINT")
	secret := srv.Getenv("IDENTITY_HEADER")
	if endpoint != srv.URL+"/msi/token" || secret == "" || secret != srv.IdentityHeader {
		t.Fatalf("Env %v", srv.Env())
	}
	good := map[string]string{"X-IDENTITY-HEADER": secret}
	tests := []struct {
		name    string
		method  string
		query   string
		header  map[string]string
		status  int
		message string
	}{
		{name: "a valid request gets a token", method: "GET", query: "?api-version=2019-08-01&resource=api://AzureADTokenExchange", header: good, status: 200},
		{name: "a user-assigned identity gets a token", method: "GET", query: "?api-version=2019-08-01&resource=r&client_id=uami", header: good, status: 200},
		{name: "without X-IDENTITY-HEADER it answers 400", method: "GET", query: "?api-version=2019-08-01&resource=r", status: 400},
		{name: "a wrong X-IDENTITY-HEADER answers 400", method: "GET", query: "?api-version=2019-08-01&resource=r",
			header: map[string]string{"X-IDENTITY-HEADER": "stale"}, status: 400},
		{name: "the IMDS api-version is refused", method: "GET", query: "?api-version=2018-02-01&resource=r", header: good, status: 400},
		{name: "resource is required", method: "GET", query: "?api-version=2019-08-01", header: good, status: 400},
		{name: "an identity not assigned cannot be loaded", method: "GET", query: "?api-version=2019-08-01&resource=r&client_id=other",
			header: good, status: 400, message: "Unable to load the proper Managed Identity."},
		{name: "POST is refused", method: "POST", query: "?api-version=2019-08-01&resource=r", header: good, status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := call(t, tt.method, endpoint+tt.query, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if status != 200 {
				if body["statusCode"] != float64(status) || body["message"] == nil {
					t.Errorf("body %v, want {statusCode, message}", body)
				}
				if tt.message != "" && body["message"] != tt.message {
					t.Errorf("message %v, want %q", body["message"], tt.message)
				}
				return
			}
			var keys []string
			for k := range body {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if want := []string{"access_token", "client_id", "expires_on", "resource", "token_type"}; !reflect.DeepEqual(keys, want) {
				t.Errorf("fields %v, want %v (no expires_in)", keys, want)
			}
			if _, ok := body["expires_on"].(string); !ok {
				t.Errorf("expires_on %v is not a string", body["expires_on"])
			}
		})
	}
}
