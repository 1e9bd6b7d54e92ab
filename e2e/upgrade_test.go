package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// wsOpen dials the app through Traefik and runs the websocket handshake
// with the client's cookies.
func wsOpen(t *testing.T, e *env, c *client, path string) (*wsConn, *http.Response) {
	t.Helper()
	u, err := url.Parse(e.traefik.url(appHost, path))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := c.dial(u)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Origin": {e.traefik.origin(appHost)}, "User-Agent": {"entraauth-e2e"}}
	var cookies []string
	for _, ck := range c.jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	if len(cookies) > 0 {
		h.Set("Cookie", strings.Join(cookies, "; "))
	}
	ws, resp, err := wsHandshake(conn, u.Host, u.RequestURI(), h)
	if err != nil {
		conn.Close()
		return nil, resp
	}
	t.Cleanup(func() { ws.Close() })
	return ws, resp
}

func TestWebSocketUpgradePassesThroughForASignedInUser(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)

	if ws, resp := wsOpen(t, e, e.client, "/ws"); ws != nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket without a session: got %v, want a 401 refusal", resp)
	}

	e.client.signIn(e.traefik.url(appHost, "/"))
	ws, resp := wsOpen(t, e, e.client, "/ws")
	if ws == nil {
		t.Fatalf("websocket with a session: got %v, want 101", resp)
	}
	if err := ws.WriteMessage(wsOpText, []byte("hello through traefik")); err != nil {
		t.Fatal(err)
	}
	op, msg, err := ws.ReadMessage(time.Now().Add(requestLimit))
	if err != nil {
		t.Fatal(err)
	}
	if want := "user=" + alice.OID + " echo=hello through traefik"; op != wsOpText || string(msg) != want {
		t.Errorf("echo = %d %q, want text %q", op, msg, want)
	}
}
