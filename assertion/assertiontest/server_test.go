package assertiontest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

// call sends a request to a fake and decodes the JSON answer.
func call(t *testing.T, method, url string, header map[string]string) (int, http.Header, map[string]interface{}) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]interface{}
	json.Unmarshal(body, &m)
	return resp.StatusCode, resp.Header, m
}

// claims decodes a JWT's payload.
func claims(t *testing.T, token string) map[string]interface{} {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not JWT-shaped", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnsignedJWTIsWellFormed(t *testing.T) {
	token := assertiontest.UnsignedJWT(map[string]interface{}{"sub": "s", "exp": 1700000000})
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] != "" {
		t.Fatalf("%q: want header.payload. with an empty signature", token)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(header) != `{"alg":"none","typ":"JWT"}` {
		t.Errorf("header %s", header)
	}
	if c := claims(t, token); c["sub"] != "s" || c["exp"] != float64(1700000000) {
		t.Errorf("claims %v", c)
	}
}

func TestFakesRecordRequestsAndStatuses(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	url := srv.URL + assertiontest.IMDSTokenPath + "?api-version=2018-02-01&resource=api://AzureADTokenExchange"
	call(t, http.MethodGet, url, nil)
	call(t, http.MethodGet, url, map[string]string{"Metadata": "true"})
	reqs := srv.Requests()
	if srv.Hits() != 2 || len(reqs) != 2 {
		t.Fatalf("%d hits, %d requests", srv.Hits(), len(reqs))
	}
	if reqs[0].Status != 400 || reqs[1].Status != 200 || reqs[1].Header.Get("Metadata") != "true" ||
		reqs[1].Query.Get("resource") != "api://AzureADTokenExchange" || reqs[1].Path != assertiontest.IMDSTokenPath {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestFakesDelayAnswers(t *testing.T) {
	srv := assertiontest.NewTsiam()
	defer srv.Close()
	srv.SetDelay(time.Second)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token?resource=api://AzureADTokenExchange", nil)
	req.Header.Set("X-Tsiam", "1")
	start := time.Now()
	if _, err := client.Do(req); err == nil {
		t.Fatal("the delayed answer arrived within 50 ms")
	}
	for i := 0; i < 100 && srv.Hits() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].Status != 0 {
		t.Errorf("recorded %+v, want one request with status 0 (client gave up)", reqs)
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Errorf("the fake kept the request %v after the client left", time.Since(start))
	}
}

func TestFakesMintWithTheTestsFunction(t *testing.T) {
	srv := assertiontest.NewIMDS()
	defer srv.Close()
	expires := time.Unix(time.Now().Add(time.Hour).Unix(), 0)
	var got string
	srv.Mint = func(clientID string) (string, time.Time) {
		got = clientID
		return "from-the-fake-tenant", expires
	}
	_, _, body := call(t, http.MethodGet, srv.URL+assertiontest.IMDSTokenPath+
		"?api-version=2018-02-01&resource=api://AzureADTokenExchange&client_id=abc", map[string]string{"Metadata": "true"})
	if got != "abc" || body["access_token"] != "from-the-fake-tenant" || body["expires_on"] != itoa(expires.Unix()) {
		t.Errorf("Mint got %q; answer %v", got, body)
	}
	srv.Mint = nil
	_, _, body = call(t, http.MethodGet, srv.URL+assertiontest.IMDSTokenPath+
		"?api-version=2018-02-01&resource=api://AzureADTokenExchange&client_id=abc", map[string]string{"Metadata": "true"})
	c := claims(t, body["access_token"].(string))
	if c["aud"] != "api://AzureADTokenExchange" || c["sub"] != srv.PrincipalID("abc") || c["azp"] != "abc" ||
		c["iss"] != "https://login.microsoftonline.com/"+srv.TenantID+"/v2.0" || itoa(int64(c["exp"].(float64))) != body["expires_on"] {
		t.Errorf("default token claims %v, answer %v", c, body)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
