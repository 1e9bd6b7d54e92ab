package entraauth

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// The examples (examples/) and the readme's configuration snippets are what
// users copy: every plugin block in them is decoded the way Traefik decodes
// it (traefikdecode_test.go) and given to New, so a misspelt option, a bad
// value, a secret file Traefik cannot see or a Kubernetes secret that is not
// created fails the tests. Secrets are placeholders: files and
// urn:k8s:secret: values are replaced with realistic values, nothing else.

// exampleSecrets stand for the Kubernetes Secrets the examples' kubectl
// commands create: name, key, value.
var exampleSecrets = map[string]map[string]string{
	"entraauth": {
		"client-secret":  "Xq78Q~example.client-secret-value_0123456",
		"session-secret": "bXkgZXhhbXBsZSBzZXNzaW9uIHNlY3JldCwgNDQgY2g=",
	},
}

// exampleCertificatePEM stands for the examples' certificate files: made
// once, on first use.
var exampleCertificatePEM string

func exampleCertificate() string {
	if exampleCertificatePEM == "" {
		_, both := entraidtest.NewCertificate("example", time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
		exampleCertificatePEM = string(both)
	}
	return exampleCertificatePEM
}

// exampleCheck holds what one example's checks need.
type exampleCheck struct {
	t   *testing.T
	dir string // for the stand-in secret files
	// mounted are the files and folders Traefik's container has, when the
	// example says (compose secrets, Kubernetes volume mounts).
	mounted []string
	// env stands in for what a platform injects (workload identity).
	env map[string]string
}

// newFromExample decodes raw onto CreateConfig() as Traefik does and calls
// New with it, after replacing the secret files with stand-ins.
func (x *exampleCheck) newFromExample(where string, raw map[string]interface{}) error {
	c := CreateConfig()
	if err := decodeLikeTraefik(raw, c); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	for _, f := range []struct {
		option string
		path   *string
		value  string
	}{
		{"microsoftEntraID.clientSecretFile", &c.MicrosoftEntraID.ClientSecretFile, exampleSecrets["entraauth"]["client-secret"]},
		{"session.secretFile", &c.Session.SecretFile, exampleSecrets["entraauth"]["session-secret"]},
		{"microsoftEntraID.clientCertificateFile", &c.MicrosoftEntraID.ClientCertificateFile, exampleCertificate()},
	} {
		if *f.path == "" {
			continue
		}
		if !filepath.IsAbs(*f.path) {
			return fmt.Errorf("%s: %s: %q is not an absolute path", where, f.option, *f.path)
		}
		if x.mounted != nil && !underAny(*f.path, x.mounted) {
			return fmt.Errorf("%s: %s: %s is not in a volume or secret mounted into Traefik's container (%v)", where, f.option, *f.path, x.mounted)
		}
		stand := filepath.Join(x.dir, strings.ReplaceAll(strings.TrimPrefix(*f.path, "/"), "/", "_"))
		if err := os.WriteFile(stand, []byte(f.value+"\n"), 0o600); err != nil {
			return err
		}
		*f.path = stand
	}
	for k, v := range x.env {
		setenv(x.t, k, v)
	}
	if _, err := New(context.Background(), http.NotFoundHandler(), c, where); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	return nil
}

// setenv is t.Setenv for the code under test: under Yaegi, interpreted
// code has an environment of its own, which the compiled testing package
// does not reach.
func setenv(t *testing.T, key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

func underAny(path string, dirs []string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// mapAt walks nested maps: mapAt(doc, "spec", "plugin").
func mapAt(v interface{}, keys ...string) map[string]interface{} {
	for _, k := range keys {
		m, ok := v.(map[string]interface{})
		if !ok {
			return nil
		}
		v = m[k]
	}
	m, _ := v.(map[string]interface{})
	return m
}

func listAt(v interface{}, keys ...string) []interface{} {
	if len(keys) > 0 {
		v = mapAt(v, keys[:len(keys)-1]...)[keys[len(keys)-1]]
	}
	l, _ := v.([]interface{})
	return l
}

func stringAt(v interface{}, keys ...string) string {
	s, _ := mapAt(v, keys[:len(keys)-1]...)[keys[len(keys)-1]].(string)
	return s
}

// hasFlag reports whether args hold the static configuration flag,
// matched as Traefik does: option names in any case.
func hasFlag(args []interface{}, name, value string) bool {
	for _, a := range args {
		s, _ := a.(string)
		if k, v, ok := strings.Cut(s, "="); ok && strings.EqualFold(k, name) && (value == "" || v == value) {
			return true
		}
	}
	return false
}

// checkPluginFlags checks that Traefik's arguments load the plugin.
func checkPluginFlags(where string, args []interface{}) error {
	if !hasFlag(args, "--experimental.plugins.entraauth.moduleName", "github.com/tfa-plugin/entraauth") || !hasFlag(args, "--experimental.plugins.entraauth.version", "") {
		return fmt.Errorf("%s: Traefik's arguments do not load the plugin (--experimental.plugins.entraauth.modulename and .version)", where)
	}
	return nil
}

// checkComposeExample checks a compose file whose services configure the
// plugin with labels.
func (x *exampleCheck) checkComposeExample(name, text string) error {
	docs, err := parseYAML(text)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if len(docs) != 1 {
		return fmt.Errorf("%s: %d YAML documents, want 1", name, len(docs))
	}
	services := mapAt(docs[0], "services")
	var traefik map[string]interface{}
	for _, s := range services {
		if image, _ := mapAt(s)["image"].(string); strings.HasPrefix(image, "traefik:") {
			traefik = mapAt(s)
		}
	}
	if traefik == nil {
		return fmt.Errorf("%s: no traefik service", name)
	}
	if err := checkPluginFlags(name, listAt(traefik, "command")); err != nil {
		return err
	}
	// The plugin reads its secret files in Traefik's container: compose
	// mounts a service's secrets at /run/secrets/<name>.
	x.mounted = []string{}
	for _, s := range listAt(traefik, "secrets") {
		secret, _ := s.(string)
		if stringAt(docs[0], "secrets", secret, "file") == "" {
			return fmt.Errorf("%s: the traefik service uses secret %q, which the top-level secrets do not define with a file", name, secret)
		}
		x.mounted = append(x.mounted, "/run/secrets/"+secret)
	}

	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	found := 0
	for _, service := range names {
		labels := map[string]string{}
		for _, l := range listAt(services[service], "labels") {
			s, _ := l.(string)
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return fmt.Errorf("%s: service %s: label %q is not key=value", name, service, s)
			}
			labels[k] = v
		}
		configs, err := pluginConfigsFromLabels(labels, "entraauth")
		if err != nil {
			return fmt.Errorf("%s: service %s: %v", name, service, err)
		}
		if err := checkRouterMiddlewares(labels, configs); err != nil {
			return fmt.Errorf("%s: service %s: %v", name, service, err)
		}
		for mw, raw := range configs {
			found++
			if err := x.newFromExample(fmt.Sprintf("%s: service %s: middleware %s", name, service, mw), raw); err != nil {
				return err
			}
		}
	}
	if found == 0 {
		return fmt.Errorf("%s: no labels configure the plugin", name)
	}
	return nil
}

// checkRouterMiddlewares checks that the routers of labels name
// middlewares defined in them (or by another provider: name@provider).
func checkRouterMiddlewares(labels map[string]string, defined map[string]map[string]interface{}) error {
	for k, v := range labels {
		parts := strings.Split(k, ".")
		if len(parts) != 5 || !strings.EqualFold(strings.Join(parts[:3], "."), "traefik.http.routers") || !strings.EqualFold(parts[4], "middlewares") {
			continue
		}
		for _, mw := range strings.Split(v, ",") {
			mw = strings.TrimSpace(mw)
			if _, ok := defined[mw]; !ok && !strings.Contains(mw, "@") && !labelsDefineMiddleware(labels, mw) {
				return fmt.Errorf("router %s uses middleware %q, which no label defines", parts[3], mw)
			}
		}
	}
	return nil
}

func labelsDefineMiddleware(labels map[string]string, name string) bool {
	prefix := strings.ToLower("traefik.http.middlewares." + name + ".")
	for k := range labels {
		if strings.HasPrefix(strings.ToLower(k), prefix) {
			return true
		}
	}
	return false
}

// exampleObject is one Kubernetes object of an example file.
type exampleObject struct {
	file string
	doc  interface{}
}

func (o exampleObject) kind() string      { return stringAt(o.doc, "kind") }
func (o exampleObject) namespace() string { return stringAt(o.doc, "metadata", "namespace") }

// checkKubernetesExamples checks manifests (file name to text) that
// deploy Traefik with the plugin and Middlewares that configure it.
func (x *exampleCheck) checkKubernetesExamples(files map[string]string) error {
	var objects []exampleObject
	fileNames := make([]string, 0, len(files))
	for f := range files {
		fileNames = append(fileNames, f)
	}
	sort.Strings(fileNames)
	for _, f := range fileNames {
		docs, err := parseYAML(files[f])
		if err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		for _, d := range docs {
			objects = append(objects, exampleObject{f, d})
		}
	}

	// Traefik's Deployment: the plugin's flags, its mounts, its pod labels
	// and its service account.
	var pod map[string]interface{}
	var traefikContainer map[string]interface{}
	var traefikNamespace string
	for _, o := range objects {
		if o.kind() != "Deployment" {
			continue
		}
		for _, c := range listAt(o.doc, "spec", "template", "spec", "containers") {
			if image, _ := mapAt(c)["image"].(string); strings.HasPrefix(image, "traefik:") {
				pod = mapAt(o.doc, "spec", "template")
				traefikContainer = mapAt(c)
				traefikNamespace = o.namespace()
			}
		}
	}
	if traefikContainer == nil {
		return fmt.Errorf("no Deployment runs a traefik image")
	}
	if err := checkPluginFlags("Traefik's Deployment", listAt(traefikContainer, "args")); err != nil {
		return err
	}
	x.mounted = []string{}
	for _, m := range listAt(traefikContainer, "volumeMounts") {
		x.mounted = append(x.mounted, stringAt(m, "mountPath"))
	}
	account := stringAt(pod, "spec", "serviceAccountName")
	clientIDAnnotation := ""
	for _, o := range objects {
		if o.kind() == "ServiceAccount" && stringAt(o.doc, "metadata", "name") == account && o.namespace() == traefikNamespace {
			clientIDAnnotation = stringAt(o.doc, "metadata", "annotations", "azure.workload.identity/client-id")
		}
	}

	middlewares := map[string]bool{}
	for _, o := range objects {
		if o.kind() != "Middleware" {
			continue
		}
		name := stringAt(o.doc, "metadata", "name")
		middlewares[o.namespace()+"/"+name] = true
		if stringAt(o.doc, "apiVersion") != "traefik.io/v1alpha1" {
			return fmt.Errorf("%s: Middleware %s: apiVersion %q, want traefik.io/v1alpha1", o.file, name, stringAt(o.doc, "apiVersion"))
		}
		raw := mapAt(o.doc, "spec", "plugin", "entraauth")
		if raw == nil {
			return fmt.Errorf("%s: Middleware %s has no spec.plugin.entraauth", o.file, name)
		}
		// Every secret a urn:k8s:secret: value names is created in the
		// file's kubectl command, in the Middleware's namespace.
		for _, urn := range regexp.MustCompile(`urn:k8s:secret:[^\s"']*`).FindAllString(files[o.file], -1) {
			parts := strings.Split(urn, ":")
			if len(parts) == 5 && (!strings.Contains(files[o.file], "-n "+o.namespace()+" create secret generic "+parts[3]) ||
				!strings.Contains(files[o.file], "--from-literal="+parts[4]+"=")) {
				return fmt.Errorf("%s: %s: no `kubectl -n %s create secret generic %s --from-literal=%s=...` in the file says how to create it", o.file, urn, o.namespace(), parts[3], parts[4])
			}
		}
		resolved, err := loadSecretKeys(raw, exampleSecrets)
		if err != nil {
			return fmt.Errorf("%s: Middleware %s: %v", o.file, name, err)
		}
		if v, _ := mapAt(raw, "microsoftEntraID")["clientAssertion"].(string); strings.EqualFold(v, "AzureWorkloadIdentity") {
			if stringAt(pod, "metadata", "labels", "azure.workload.identity/use") != "true" {
				return fmt.Errorf("%s: Middleware %s uses AzureWorkloadIdentity, but Traefik's pod lacks the label azure.workload.identity/use: \"true\"", o.file, name)
			}
			if !isGUIDString(clientIDAnnotation) {
				return fmt.Errorf("%s: Middleware %s uses AzureWorkloadIdentity, but Traefik's service account %q has no azure.workload.identity/client-id annotation", o.file, name, account)
			}
			token := filepath.Join(x.dir, "azure-identity-token")
			if err := os.WriteFile(token, []byte("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), 0o600); err != nil {
				return err
			}
			// What the workload identity webhook injects.
			x.env = map[string]string{
				"AZURE_CLIENT_ID":            clientIDAnnotation,
				"AZURE_TENANT_ID":            "72f988bf-86f1-41af-91ab-2d7cd011db47",
				"AZURE_FEDERATED_TOKEN_FILE": token,
				"AZURE_AUTHORITY_HOST":       "https://login.microsoftonline.com/",
			}
		}
		err = x.newFromExample(o.file+": Middleware "+name, resolved.(map[string]interface{}))
		x.env = nil
		if err != nil {
			return err
		}
	}
	if len(middlewares) == 0 {
		return fmt.Errorf("no Middleware configures the plugin")
	}

	routes := 0
	for _, o := range objects {
		if o.kind() != "IngressRoute" {
			continue
		}
		for _, r := range listAt(o.doc, "spec", "routes") {
			for _, m := range listAt(r, "middlewares") {
				routes++
				ns := stringAt(m, "namespace")
				if ns == "" {
					ns = o.namespace()
				}
				if !middlewares[ns+"/"+stringAt(m, "name")] {
					return fmt.Errorf("%s: IngressRoute %s uses Middleware %s/%s, which no example defines", o.file, stringAt(o.doc, "metadata", "name"), ns, stringAt(m, "name"))
				}
			}
		}
	}
	if routes == 0 {
		return fmt.Errorf("no IngressRoute uses the middleware")
	}
	return nil
}

func isGUIDString(s string) bool {
	return regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`).MatchString(s)
}

// readmeBlocks returns the readme's fenced YAML blocks that are whole
// configurations: dynamic configuration for the file provider ("http:") or
// a compose service's labels ("labels:").
func readmeBlocks(readme string) []string {
	var blocks []string
	for _, part := range strings.Split(readme, "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		if strings.HasPrefix(block, "http:") || strings.HasPrefix(block, "labels:") {
			blocks = append(blocks, block)
		}
	}
	return blocks
}

// checkReadmeBlock checks one of readmeBlocks.
func (x *exampleCheck) checkReadmeBlock(block string) error {
	docs, err := parseYAML(block)
	if err != nil || len(docs) != 1 {
		return fmt.Errorf("not one YAML document (%v):\n%s", err, block)
	}
	configs := map[string]map[string]interface{}{}
	if strings.HasPrefix(block, "labels:") {
		labels := map[string]string{}
		for _, l := range listAt(docs[0], "labels") {
			s, _ := l.(string)
			k, v, _ := strings.Cut(s, "=")
			labels[k] = v
		}
		if configs, err = pluginConfigsFromLabels(labels, "entraauth"); err != nil {
			return err
		}
	} else {
		for name, mw := range mapAt(docs[0], "http", "middlewares") {
			if raw := mapAt(mw, "plugin", "entraauth"); raw != nil {
				configs[name] = raw
			}
		}
	}
	if len(configs) == 0 {
		return fmt.Errorf("no plugin configuration in:\n%s", block)
	}
	for name, raw := range configs {
		if err := x.newFromExample("readme: middleware "+name, raw); err != nil {
			return err
		}
	}
	return nil
}

func readExample(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func kubernetesExamples(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("examples", "kubernetes", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Kubernetes examples (%v)", err)
	}
	files := map[string]string{}
	for _, p := range paths {
		files[filepath.Base(p)] = readExample(t, p)
	}
	return files
}

func TestTheExamplesDecodeIntoAConfigThatNewAccepts(t *testing.T) {
	t.Run("docker compose", func(t *testing.T) {
		x := &exampleCheck{t: t, dir: t.TempDir()}
		if err := x.checkComposeExample("compose.yaml", readExample(t, "examples/docker-compose/compose.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("kubernetes", func(t *testing.T) {
		x := &exampleCheck{t: t, dir: t.TempDir()}
		if err := x.checkKubernetesExamples(kubernetesExamples(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the readme's snippets", func(t *testing.T) {
		blocks := readmeBlocks(readExample(t, "readme.md"))
		if len(blocks) < 2 {
			t.Fatalf("found %d whole configurations in the readme, want the file provider's and the labels", len(blocks))
		}
		for _, b := range blocks {
			x := &exampleCheck{t: t, dir: t.TempDir()}
			if err := x.checkReadmeBlock(b); err != nil {
				t.Error(err)
			}
		}
	})
}

func TestTheExampleCheckRefusesMistakes(t *testing.T) {
	compose := readExample(t, "examples/docker-compose/compose.yaml")
	tests := []struct {
		name     string
		file     string // "compose.yaml" or a Kubernetes example
		old, new string
		want     string
	}{
		{"a misspelt label option", "compose.yaml", "plugin.entraauth.allowedGroups=", "plugin.entraauth.allowedGroup=", "allowedGroup: unknown option"},
		{"a misspelt nested label option", "compose.yaml", "plugin.entraauth.session.secretFile=", "plugin.entraauth.session.secretfiles=", "session.secretfiles: unknown option"},
		{"a bad label value", "compose.yaml", "microsoftEntraID.tenantID=72f988bf-86f1-41af-91ab-2d7cd011db47", "microsoftEntraID.tenantID=not a tenant", "entraauth: microsoftEntraID.tenantID:"},
		{"a secret file the traefik service does not mount", "compose.yaml", "clientSecretFile=/run/secrets/entra-client-secret", "clientSecretFile=/run/secrets/client-secret", "not in a volume or secret mounted into Traefik's container"},
		{"a router using a middleware nobody defines", "compose.yaml", "routers.whoami.middlewares=entra", "routers.whoami.middlewares=entra-auth", `uses middleware "entra-auth"`},
		{"the plugin not loaded", "compose.yaml", "--experimental.plugins.entraauth.modulename=", "--experimental.plugins.entra.modulename=", "do not load the plugin"},
		{"a misspelt CRD option", "middleware.yaml", "excludedPaths: [/health]", "excludePaths: [/health]", "excludePaths: unknown option"},
		{"a bad CRD value", "middleware.yaml", "excludedPaths: [/health]", "excludedPaths: [health]", "entraauth: excludedPaths:"},
		{"a secret file outside Traefik's mounts", "middleware.yaml", "secretFile: /var/run/secrets/entraauth/session-secret", "secretFile: /etc/entraauth/session-secret", "not in a volume or secret mounted"},
		{"a secret key that is not created", "middleware-secret-urn.yaml", "urn:k8s:secret:entraauth:client-secret", "urn:k8s:secret:entraauth:clientsecret", "no `kubectl -n whoami create secret generic entraauth --from-literal=clientsecret=...`"},
		{"a malformed secret URN", "middleware-secret-urn.yaml", "urn:k8s:secret:entraauth:session-secret", "urn:k8s:secret:entraauth/session-secret", "malformed secret URN"},
		{"workload identity without the pod label", "traefik.yaml", `azure.workload.identity/use: "true"`, `azure.workload.identity/use: "false"`, `lacks the label azure.workload.identity/use: "true"`},
		{"an IngressRoute naming another middleware", "whoami.yaml", "- name: entra\n", "- name: entra-auth\n", "uses Middleware whoami/entra-auth"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			x := &exampleCheck{t: t, dir: t.TempDir()}
			var err error
			if tt.file == "compose.yaml" {
				if !strings.Contains(compose, tt.old) {
					t.Fatalf("compose.yaml no longer holds %q", tt.old)
				}
				err = x.checkComposeExample(tt.file, strings.Replace(compose, tt.old, tt.new, 1))
			} else {
				files := kubernetesExamples(t)
				if !strings.Contains(files[tt.file], tt.old) {
					t.Fatalf("%s no longer holds %q", tt.file, tt.old)
				}
				files[tt.file] = strings.Replace(files[tt.file], tt.old, tt.new, 1)
				err = x.checkKubernetesExamples(files)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestLabelsDecodeAsTraefiksLabelParserDoes(t *testing.T) {
	const p = "traefik.http.middlewares.entra.plugin.entraauth."
	configs, err := pluginConfigsFromLabels(map[string]string{
		"traefik.http.routers.app.rule":            "Host(`app.example.com`)",
		p + "microsoftEntraID.tenantID":            "72f988bf-86f1-41af-91ab-2d7cd011db47",
		p + "MicrosoftEntraID.scopes":              "openid,email",
		p + "allowedRoles[0]":                      "Reader",
		p + "allowedRoles[1]":                      "Writer, with a comma",
		p + "headers.X-User":                       "oid",
		p + "session.insecureCookies":              "true",
		"traefik.http.middlewares.other.headers.x": "y",
	}, "entraauth")
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) != 1 || configs["entra"] == nil {
		t.Fatalf("configs = %v, want the one plugin middleware", configs)
	}
	c := CreateConfig()
	if err := decodeLikeTraefik(configs["entra"], c); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.MicrosoftEntraID.Scopes, "|"); got != "openid|email" || c.MicrosoftEntraID.TenantID == "" {
		t.Errorf("microsoftEntraID = %+v: keys in any case merge, a string splits at commas", c.MicrosoftEntraID)
	}
	if got := strings.Join(c.AllowedRoles, "|"); got != "Reader|Writer, with a comma" {
		t.Errorf("allowedRoles = %q: indexed labels are a list, their items kept whole", got)
	}
	if c.Headers["X-User"] != "oid" || !c.Session.InsecureCookies {
		t.Errorf("headers %v, insecureCookies %v", c.Headers, c.Session.InsecureCookies)
	}
}
