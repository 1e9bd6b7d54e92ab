package assertion

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Tsiam gets the assertion from tsiam, which issues JWTs for the Tailscale
// node that calls it. tsiam refuses requests that look like they come from a
// browser (Origin, Sec-Fetch-*), so none are sent.
type Tsiam struct {
	Endpoint   string       // e.g. https://tsiam.example.ts.net, without trailing slash
	Resource   string       // audience, e.g. api://AzureADTokenExchange
	HTTPClient *http.Client // nil: a shared client that uses no proxy
	// RequestTimeout bounds each request (zero: DefaultRequestTimeout).
	RequestTimeout time.Duration
}

// String describes the source for logs.
func (t *Tsiam) String() string {
	return "tsiam (" + t.Endpoint + ", resource " + t.Resource + ")"
}

// Fetch requests a token: POST {Endpoint}/token?resource=..., no body,
// header X-Tsiam: 1.
func (t *Tsiam) Fetch(ctx context.Context) (Token, error) {
	const source = "tsiam"
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout(t.RequestTimeout))
	defer cancel()
	endpoint := t.Endpoint + "/token?" + url.Values{"resource": {t.Resource}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, http.NoBody)
	if err != nil {
		return Token{}, fmt.Errorf("assertion: %s: %v", source, err)
	}
	req.Header.Set("X-Tsiam", "1")
	req.Header.Set("Accept", "application/json")
	r, err := send(clientOr(t.HTTPClient, directClient), req, t.RequestTimeout)
	if err != nil {
		return Token{}, unavailable(source, "requesting a token from "+t.Endpoint, "is this machine on the tailnet and tsiam running?", err)
	}
	if r.status != http.StatusOK {
		e := serviceError(source, r, "")
		switch {
		case r.status == http.StatusForbidden:
			e.Hint = "tsiam refused this node or audience " + t.Resource + "; allow it in tsiam's allowedAudiences and in the node's " +
				"Tailscale grant, and make sure no proxy adds Origin or Sec-Fetch-* headers"
		case r.status == http.StatusBadRequest:
			e.Hint = "check the tsiam endpoint and that it accepts resource " + t.Resource
		case r.status >= 500:
			e.Hint = "tsiam failed; see its logs"
		}
		return Token{}, e
	}
	return tokenFromJSON(source, r.body, time.Now())
}
