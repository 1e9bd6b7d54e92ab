package assertiontest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

func TestArcChallenge(t *testing.T) {
	srv := assertiontest.NewArc()
	defer srv.Close()
	if srv.Getenv("IDENTITY_ENDPOINT") != srv.URL+assertiontest.IMDSTokenPath || srv.Getenv("IMDS_ENDPOINT") != srv.URL {
		t.Fatalf("Env %v", srv.Env())
	}
	url := srv.Getenv("IDENTITY_ENDPOINT") + "?api-version=2020-06-01&resource=api://AzureADTokenExchange"
	status, header, _ := call(t, http.MethodGet, url, map[string]string{"Metadata": "true"})
	challenge := header.Get("WWW-Authenticate")
	if status != 401 || !strings.HasPrefix(challenge, "Basic realm=") {
		t.Fatalf("first request: %d %q, want 401 with a Basic realm challenge", status, challenge)
	}
	keyFile := strings.TrimPrefix(challenge, "Basic realm=")
	if filepath.Dir(keyFile) != srv.KeyDir || filepath.Ext(keyFile) != ".key" {
		t.Errorf("challenge names %s, want a .key file in %s", keyFile, srv.KeyDir)
	}
	secret, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header map[string]string
		query  string
		status int
	}{
		{name: "a wrong key is refused", header: map[string]string{"Metadata": "true", "Authorization": "Basic wrong"}, status: 401},
		{name: "the key without Metadata is refused", header: map[string]string{"Authorization": "Basic " + string(secret)}, status: 400},
		{name: "a user-assigned identity is refused", header: map[string]string{"Metadata": "true"}, query: "&client_id=uami", status: 400},
		{name: "the key gets a token", header: map[string]string{"Metadata": "true", "Authorization": "Basic " + string(secret)}, status: 200},
		{name: "the key works once", header: map[string]string{"Metadata": "true", "Authorization": "Basic " + string(secret)}, status: 401},
	}
	for _, tt := range tests {
		status, _, body := call(t, http.MethodGet, url+tt.query, tt.header)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d: %v", tt.name, status, tt.status, body)
		}
		if status == 200 && body["access_token"] == nil {
			t.Errorf("%s: no token in %v", tt.name, body)
		}
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("the used key file is still there")
	}
}

func TestArcForgedChallengeAndCleanup(t *testing.T) {
	srv := assertiontest.NewArc()
	srv.ForgeChallenge("/etc/passwd")
	_, header, _ := call(t, http.MethodGet, srv.URL+assertiontest.IMDSTokenPath+"?api-version=2020-06-01&resource=r",
		map[string]string{"Metadata": "true"})
	if got := header.Get("WWW-Authenticate"); got != "Basic realm=/etc/passwd" {
		t.Errorf("challenge %q", got)
	}
	dir := srv.KeyDir
	srv.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Close left %s", dir)
	}
}
