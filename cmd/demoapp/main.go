// Command demoapp is the application behind Traefik in `make demo`: a page
// that shows the identity headers the plugin sent with the request and the
// claims of the access token it received for its API, with links to the
// plugin's profile and sign-out endpoints.
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"strings"
	"time"
)

// identityHeaders are the headers the plugin sets on every signed-in request.
var identityHeaders = []string{
	"X-Forwarded-User",
	"X-Forwarded-Email",
	"X-Forwarded-Name",
	"X-Forwarded-Preferred-Username",
	"X-Forwarded-Groups",
	"X-Forwarded-Roles",
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>entraauth demo app</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; padding: 0 1rem; color: #1b1b1b; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; font-size: .95rem; }
th { width: 18rem; font-weight: 600; }
td code { word-break: break-all; }
.missing { color: #a00; }
form { display: inline; }
.actions { margin: 1.2rem 0; }
button, a.button { font: inherit; padding: .4rem .9rem; margin-right: .5rem; border: 1px solid #0067b8; border-radius: 4px; background: #0067b8; color: #fff; text-decoration: none; cursor: pointer; }
a.button { background: #fff; color: #0067b8; }
</style>
</head>
<body>
<h1>Hello{{if .Name}}, {{.Name}}{{end}}</h1>
<p>This page is the application behind Traefik. It has no sign-in code: the
entraauth middleware signed you in with Microsoft Entra ID and sent these
headers with your request to <code>{{.Path}}</code>.</p>
<table>
{{range .Headers}}<tr><th>{{.Name}}</th><td>{{if .Value}}<code>{{.Value}}</code>{{else}}<span class="missing">(not sent)</span>{{end}}</td></tr>
{{end}}</table>
{{if .Token}}<h2>Access token for this app's API</h2>
<p>The plugin redeemed the session's refresh token for it (<code>upstreamAccessToken</code>) and sent it in
<code>Authorization</code>. An API would verify it; this page only shows its claims.</p>
<table>
{{range .Token}}<tr><th>{{.Name}}</th><td><code>{{.Value}}</code></td></tr>
{{end}}</table>{{end}}
<div class="actions">
<a class="button" href="/portals/{{.Portal}}/profile">Profile</a>
<form method="post" action="/portals/{{.Portal}}/logout"><button type="submit">Sign out</button></form>
</div>
<p><small>Served at {{.Time}}.</small></p>
</body>
</html>
`))

type header struct{ Name, Value string }

// tokenClaims decodes, without verifying, the claims of a bearer JWT worth
// showing: who it is for, for what, until when.
func tokenClaims(auth string) []header {
	if !strings.HasPrefix(auth, "Bearer ") {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(auth, "Bearer "), ".")
	if len(parts) != 3 {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var claims map[string]interface{}
	if json.Unmarshal(payload, &claims) != nil {
		return nil
	}
	var out []header
	for _, name := range []string{"aud", "scp", "oid", "name", "iss", "exp"} {
		v, ok := claims[name]
		if !ok {
			continue
		}
		value := fmt.Sprint(v)
		if f, isNumber := v.(float64); isNumber && name == "exp" {
			value = time.Unix(int64(f), 0).Format(time.RFC1123)
		}
		out = append(out, header{name, value})
	}
	return out
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8092", "address to listen on")
	portal := flag.String("portal", "main", "the plugin's portal name, for the profile and sign-out links")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("demoapp: ")

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		data := struct {
			Name, Path, Portal, Time string
			Headers, Token           []header
		}{
			Name:   r.Header.Get("X-Forwarded-Name"),
			Path:   r.URL.RequestURI(),
			Portal: *portal,
			Time:   time.Now().Format(time.RFC1123),
		}
		for _, h := range identityHeaders {
			data.Headers = append(data.Headers, header{h, r.Header.Get(h)})
		}
		data.Token = tokenClaims(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := page.Execute(w, data); err != nil {
			log.Print(err)
		}
	})
	srv := &http.Server{Addr: *addr, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("listening on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}
