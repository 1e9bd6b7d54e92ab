package entraid

import (
	"net/url"
	"testing"
)

func TestEndpointsMustStayOnTheAuthoritysCloud(t *testing.T) {
	tests := []struct {
		authority, endpoint string
		ok                  bool
	}{
		{"https://login.microsoftonline.com", "https://login.microsoftonline.com/t/oauth2/v2.0/token", true},
		{"https://login.microsoft.com", "https://login.microsoftonline.com/t/oauth2/v2.0/token", true},
		{"https://login.microsoftonline.com", "https://LOGIN.MICROSOFTONLINE.COM/t/oauth2/v2.0/token", true},
		{"https://login.microsoftonline.com", "http://login.microsoftonline.com/t/oauth2/v2.0/token", false},
		{"https://login.microsoftonline.com", "https://login.microsoftonline.us/t/oauth2/v2.0/token", false},
		{"https://login.microsoftonline.com", "https://attacker.example/t/oauth2/v2.0/token", false},
		{"https://login.microsoftonline.com", "https://login.microsoftonline.com.attacker.example/t", false},
		{"https://login.microsoftonline.com", "https://user@login.microsoftonline.com/t", false},
		{"https://login.microsoftonline.com", "https://login.microsoftonline.com:8443/t", false},
		{"https://login.partner.microsoftonline.cn", "https://login.chinacloudapi.cn/t/oauth2/v2.0/token", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/t/oauth2/v2.0/token", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8081/t/oauth2/v2.0/token", false},
		{"http://127.0.0.1:8080", "https://127.0.0.1:8080/t/oauth2/v2.0/token", false},
		{"http://127.0.0.1:8080", "http://localhost:8080/t/oauth2/v2.0/token", false},
	}
	for _, tt := range tests {
		c, err := NewClient(Config{AuthorityHost: tt.authority, Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc", Credential: ClientSecret("x")})
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(tt.endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.onAuthority(u); got != tt.ok {
			t.Errorf("authority %s, endpoint %s: on the authority = %v, want %v", tt.authority, tt.endpoint, got, tt.ok)
		}
	}
}

func TestCheckAuthorityHostNormalizes(t *testing.T) {
	for raw, want := range map[string]string{
		"":                                     DefaultAuthorityHost,
		" https://login.microsoftonline.com/ ": "https://login.microsoftonline.com",
		"HTTPS://Login.MicrosoftOnline.US":     "https://login.microsoftonline.us",
		"http://LOCALHOST:8091":                "http://localhost:8091",
	} {
		got, err := CheckAuthorityHost(raw)
		if err != nil || got != want {
			t.Errorf("CheckAuthorityHost(%q) = %q, %v, want %q", raw, got, err, want)
		}
	}
}
