package entraid

import (
	"strings"
	"testing"
)

func TestParseError(t *testing.T) {
	body := []byte(`{"error":"invalid_grant","error_description":"AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.\r\nTrace ID: 3b1e\r\nCorrelation ID: 5d2\r\nTimestamp: 2024-01-01 12:00:00Z","error_codes":[54005],"timestamp":"2024-01-01 12:00:00Z","trace_id":"3b1e","correlation_id":"5d2","error_uri":"https://login.microsoftonline.com/error?code=54005"}`)
	e := parseError(400, body)
	if e == nil {
		t.Fatal("not parsed")
	}
	want := Error{StatusCode: 400, Code: "invalid_grant", ErrorCodes: []int{54005}, TraceID: "3b1e", CorrelationID: "5d2", Timestamp: "2024-01-01 12:00:00Z"}
	if e.StatusCode != want.StatusCode || e.Code != want.Code || len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != 54005 || e.TraceID != want.TraceID || e.CorrelationID != want.CorrelationID || e.Timestamp != want.Timestamp {
		t.Errorf("got %+v", e)
	}
	if got := e.Error(); got != "entraid: token endpoint: invalid_grant: AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token." {
		t.Errorf("Error() = %q", got)
	}
	for _, b := range []string{``, `<html>`, `{}`, `{"error":""}`, `[]`, `{"error":"x","error_codes":"54005"}`} {
		if e := parseError(400, []byte(b)); e != nil {
			t.Errorf("%q parsed as %+v", b, e)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"only the first line of the description", Error{Code: "invalid_client", Description: "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}, "entraid: token endpoint: invalid_client: AADSTS7000215: Invalid client secret provided."},
		{"a description with plain newlines", Error{Code: "invalid_client", Description: "first\nsecond"}, "entraid: token endpoint: invalid_client: first"},
		{"no description names the status", Error{StatusCode: 400, Code: "invalid_request"}, "entraid: token endpoint: invalid_request (HTTP 400)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestAADSTS(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"from error_codes", Error{ErrorCodes: []int{70021}}, "AADSTS70021"},
		{"the last, most specific of error_codes", Error{ErrorCodes: []int{70002, 54005}}, "AADSTS54005"},
		{"from the description when error_codes is missing", Error{Description: "AADSTS700212: No matching federated identity record"}, "AADSTS700212"},
		{"none", Error{Description: "Something else"}, ""},
		{"a bare prefix is none", Error{Description: "AADSTS: x"}, ""},
	}
	for _, tt := range tests {
		if got := tt.err.AADSTS(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestHint(t *testing.T) {
	tests := []struct {
		code int
		want string // a phrase the advice must contain
	}{
		{7000215, "Secret ID"},
		{7000222, "expired"},
		{7000218, "clientSecret"},
		{700016, "clientID"},
		{50011, "https://<host>/portals/<portal>/oauth2/callback"},
		{54005, "already redeemed"},
		{70008, "10 minutes"},
		{501481, "code_verifier"},
		{70021, "api://AzureADTokenExchange"},
		{700211, "Issuer"},
		{700212, "projected service account token with audience api://AzureADTokenExchange"},
		{700213, "Subject"},
		{700024, "clock"},
		{700027, "signature"},
		{90002, "tenantID"},
	}
	for _, tt := range tests {
		e := &Error{ErrorCodes: []int{tt.code}}
		if got := e.Hint(); !strings.Contains(got, tt.want) {
			t.Errorf("Hint for %d = %q, want it to contain %q", tt.code, got, tt.want)
		}
	}
	t.Run("an earlier code with a hint is used when the last has none", func(t *testing.T) {
		e := &Error{ErrorCodes: []int{54005, 1}}
		if !strings.Contains(e.Hint(), "already redeemed") {
			t.Errorf("Hint = %q", e.Hint())
		}
	})
	t.Run("the description's code is used without error_codes", func(t *testing.T) {
		e := &Error{Description: "AADSTS700212: No matching federated identity record found"}
		if !strings.Contains(e.Hint(), "audience") {
			t.Errorf("Hint = %q", e.Hint())
		}
	})
	t.Run("unknown codes give no hint", func(t *testing.T) {
		for _, e := range []*Error{{ErrorCodes: []int{1}}, {}} {
			if h := e.Hint(); h != "" {
				t.Errorf("Hint = %q", h)
			}
		}
	})
}

func TestErrorSummary(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"Entra's JSON", `{"error":"server_error","error_description":"AADSTS90033: x\r\nTrace ID: t","trace_id":"t"}`, ": server_error: AADSTS90033: x (trace ID t)"},
		{"an empty body", "  ", ""},
		{"text", "bad gateway\n", `: body "bad gateway"`},
		{"long text is cut", strings.Repeat("x", 200), `: body "` + strings.Repeat("x", 120) + `..."`},
	}
	for _, tt := range tests {
		if got := errorSummary([]byte(tt.body)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
