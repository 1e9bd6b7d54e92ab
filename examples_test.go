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

	// HTTP to HTTPS: the redirection must send browsers to the port
	// compose publishes HTTPS on.
	flags := traefikFlags(listAt(traefik, "command"))
	var httpsEntryPoints []string
	var routers []labelRouter
	for _, service := range names {
		for _, r := range tlsRouters(listAt(services[service], "labels")) {
			httpsEntryPoints = append(httpsEntryPoints, r.entryPoints...)
			routers = append(routers, r)
		}
	}
	reachable := func(containerPort string) []string {
		var ports []string
		for _, p := range listAt(traefik, "ports") {
			s, _ := p.(string)
			parts := strings.Split(s, ":") // [ip:]host:container
			if len(parts) >= 2 && parts[len(parts)-1] == containerPort {
				ports = append(ports, parts[len(parts)-2])
			}
		}
		return ports
	}
	if err := checkRedirects(name, flags, httpsEntryPoints, reachable); err != nil {
		return err
	}
	return checkComposeCertificates(name, traefik, routers)
}

// labelRouter is a router that compose labels define with TLS.
type labelRouter struct {
	name         string
	entryPoints  []string
	certResolver string
}

// tlsRouters returns the routers of labels that serve TLS
// (traefik.http.routers.<name>.tls=true or .tls.certresolver=...).
func tlsRouters(labels []interface{}) []labelRouter {
	byName := map[string]*labelRouter{}
	var order []string
	tls := map[string]bool{}
	for _, l := range labels {
		s, _ := l.(string)
		k, v, _ := strings.Cut(s, "=")
		parts := strings.Split(strings.ToLower(k), ".")
		if len(parts) < 5 || strings.Join(parts[:3], ".") != "traefik.http.routers" {
			continue
		}
		r := byName[parts[3]]
		if r == nil {
			r = &labelRouter{name: parts[3]}
			byName[parts[3]] = r
			order = append(order, parts[3])
		}
		switch strings.Join(parts[4:], ".") {
		case "entrypoints":
			for _, ep := range strings.Split(v, ",") {
				r.entryPoints = append(r.entryPoints, strings.TrimSpace(ep))
			}
		case "tls":
			tls[r.name] = v == "true"
		case "tls.certresolver":
			tls[r.name] = true
			r.certResolver = v
		}
	}
	var out []labelRouter
	for _, n := range order {
		if tls[n] {
			out = append(out, *byName[n])
		}
	}
	return out
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
	var traefikNamespace, traefikFile, traefikDeployment string
	for _, o := range objects {
		if o.kind() != "Deployment" {
			continue
		}
		for _, c := range listAt(o.doc, "spec", "template", "spec", "containers") {
			if image, _ := mapAt(c)["image"].(string); strings.HasPrefix(image, "traefik:") {
				pod = mapAt(o.doc, "spec", "template")
				traefikContainer = mapAt(c)
				traefikNamespace = o.namespace()
				traefikFile = o.file
				traefikDeployment = stringAt(o.doc, "metadata", "name")
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
		// stringAt, not a comma-ok assertion in the if: under Yaegi a failed
		// assertion in a loop keeps the previous iteration's value.
		if strings.EqualFold(stringAt(raw, "microsoftEntraID", "clientAssertion"), "AzureWorkloadIdentity") {
			// The label and the annotation are in traefik.yaml, or the
			// Middleware's file says how to add them.
			patch := "kubectl -n " + traefikNamespace + " patch deployment " + traefikDeployment + ` -p '{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}'`
			if stringAt(pod, "metadata", "labels", "azure.workload.identity/use") != "true" && !strings.Contains(files[o.file], patch) {
				return fmt.Errorf("%s: Middleware %s uses AzureWorkloadIdentity, but Traefik's pod lacks the label azure.workload.identity/use: \"true\", and the file does not say `%s`", o.file, name, patch)
			}
			clientID := clientIDAnnotation
			annotate := "kubectl -n " + traefikNamespace + " annotate serviceaccount " + account + " azure.workload.identity/client-id="
			if i := strings.Index(files[o.file], annotate); clientID == "" && i >= 0 {
				clientID = strings.Fields(files[o.file][i+len(annotate):] + " ")[0]
			}
			if !isGUIDString(clientID) {
				return fmt.Errorf("%s: Middleware %s uses AzureWorkloadIdentity, but Traefik's service account %q has no azure.workload.identity/client-id annotation (a GUID), and the file does not say `%s<client ID>`", o.file, name, account, annotate)
			}
			token := filepath.Join(x.dir, "azure-identity-token")
			if err := os.WriteFile(token, []byte("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), 0o600); err != nil {
				return err
			}
			// What the workload identity webhook injects.
			x.env = map[string]string{
				"AZURE_CLIENT_ID":            clientID,
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

	// HTTP to HTTPS: the redirection must send browsers to the port the
	// Service exposes HTTPS on, not to the port Traefik listens on in its
	// pod.
	flags := traefikFlags(listAt(traefikContainer, "args"))
	var httpsEntryPoints []string
	for _, o := range objects {
		if o.kind() == "IngressRoute" && mapAt(o.doc, "spec")["tls"] != nil {
			for _, ep := range listAt(o.doc, "spec", "entryPoints") {
				s, _ := ep.(string)
				httpsEntryPoints = append(httpsEntryPoints, s)
			}
		}
	}
	podLabels := mapAt(pod, "metadata", "labels")
	reachable := func(containerPort string) []string {
		targets := []string{containerPort}
		for _, p := range listAt(traefikContainer, "ports") {
			if stringAt(p, "containerPort") == containerPort && stringAt(p, "name") != "" {
				targets = append(targets, stringAt(p, "name"))
			}
		}
		var ports []string
		for _, o := range objects {
			if o.kind() != "Service" || o.namespace() != traefikNamespace || !selects(mapAt(o.doc, "spec", "selector"), podLabels) {
				continue
			}
			for _, p := range listAt(o.doc, "spec", "ports") {
				target := stringAt(p, "targetPort")
				if target == "" {
					target = stringAt(p, "port")
				}
				if containsString(targets, target) {
					ports = append(ports, stringAt(p, "port"))
				}
			}
		}
		return ports
	}
	if err := checkRedirects(traefikFile, flags, httpsEntryPoints, reachable); err != nil {
		return err
	}
	return checkKubernetesCertificates(objects, flags, x.mounted)
}

// selects reports whether a Service's selector matches a pod's labels.
func selects(selector, labels map[string]interface{}) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
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
		{"a misspelt label option", "compose.yaml", "plugin.entraauth.allowedGroups=", "plugin.entraauth.allowedGroup=", "unknown option allowedGroup: did you mean allowedGroups?"},
		{"a misspelt nested label option", "compose.yaml", "plugin.entraauth.session.secretFile=", "plugin.entraauth.session.secretfiles=", "unknown option session.secretfiles: did you mean session.secretFile?"},
		{"a bad label value", "compose.yaml", "microsoftEntraID.tenantID=72f988bf-86f1-41af-91ab-2d7cd011db47", "microsoftEntraID.tenantID=not a tenant", "entraauth: microsoftEntraID.tenantID:"},
		{"a secret file the traefik service does not mount", "compose.yaml", "clientSecretFile=/run/secrets/entra-client-secret", "clientSecretFile=/run/secrets/client-secret", "not in a volume or secret mounted into Traefik's container"},
		{"a router using a middleware nobody defines", "compose.yaml", "routers.whoami.middlewares=entra", "routers.whoami.middlewares=entra-auth", `uses middleware "entra-auth"`},
		{"the plugin not loaded", "compose.yaml", "--experimental.plugins.entraauth.modulename=", "--experimental.plugins.entra.modulename=", "do not load the plugin"},
		{"a misspelt CRD option", "middleware.yaml", "excludedPaths: [/health]", "excludePaths: [/health]", "unknown option excludePaths: did you mean excludedPaths?"},
		{"a bad CRD value", "middleware.yaml", "excludedPaths: [/health]", "excludedPaths: [health]", "entraauth: excludedPaths:"},
		{"a secret file outside Traefik's mounts", "middleware.yaml", "secretFile: /var/run/secrets/entraauth/session-secret", "secretFile: /etc/entraauth/session-secret", "not in a volume or secret mounted"},
		{"a secret key that is not created", "middleware-secret-urn.yaml", "urn:k8s:secret:entraauth:client-secret", "urn:k8s:secret:entraauth:clientsecret", "no `kubectl -n whoami create secret generic entraauth --from-literal=clientsecret=...`"},
		{"a malformed secret URN", "middleware-secret-urn.yaml", "urn:k8s:secret:entraauth:session-secret", "urn:k8s:secret:entraauth/session-secret", "malformed secret URN"},
		{"workload identity without the pod label", "middleware-workload-identity.yaml", `"azure.workload.identity/use":"true"`, `"azure.workload.identity/use":"false"`, `lacks the label azure.workload.identity/use: "true"`},
		{"workload identity without the client ID annotation", "middleware-workload-identity.yaml", "annotate serviceaccount traefik", "annotate serviceaccount default", "has no azure.workload.identity/client-id annotation"},
		{"a redirection to the pod's own HTTPS port", "traefik.yaml", "redirections.entrypoint.to=:443", "redirections.entrypoint.to=websecure", "redirects HTTP to https://<host>:8443/, but users reach HTTPS on port(s) [443]"},
		{"a redirection to a port compose does not publish", "compose.yaml", `"443:443"`, `"8443:443"`, "redirects HTTP to https://<host>:443/, but users reach HTTPS on port(s) [8443]"},
		{"no redirection to HTTPS", "compose.yaml", "--entrypoints.web.http.redirections.entrypoint.to=websecure", "--entrypoints.web.http.redirections.entrypoint.scheme=https", "no entry point redirects HTTP to HTTPS"},
		{"a TLS router without a certificate resolver", "compose.yaml", "routers.whoami.tls.certresolver=letsencrypt", "routers.whoami.tls=true", "Traefik would serve its self-signed default certificate"},
		{"ACME storage outside a volume", "compose.yaml", "acme.storage=/letsencrypt/acme.json", "acme.storage=/acme.json", "is not on a volume"},
		{"an IngressRoute with Traefik's default certificate", "whoami.yaml", "secretName: whoami-example-com-tls", "secretName: \"\"", "Traefik would serve its self-signed default certificate"},
		{"a certificate for another host", "certificate.yaml", "- whoami.example.com", "- www.example.com", "host whoami.example.com is not among the dnsNames"},
		{"an HTTP-01 challenge the redirection swallows", "traefik.yaml", "--entrypoints.web.allowacmebypass=true", "--entrypoints.web.forwardedheaders.insecure=false", "set --entrypoints.web.allowacmebypass=true"},
		{"an HTTP-01 challenge Traefik does not serve", "traefik.yaml", "            - --providers.kubernetesingress\n", "", "lack --providers.kubernetesingress"},
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

// traefikFlags reads Traefik's static configuration from its command-line
// arguments: option names lower-cased (Traefik matches them in any case),
// a flag without a value is "true".
func traefikFlags(args []interface{}) map[string]string {
	flags := map[string]string{}
	for _, a := range args {
		s, _ := a.(string)
		k, v, ok := strings.Cut(strings.TrimPrefix(s, "--"), "=")
		if !ok {
			v = "true"
		}
		flags[strings.ToLower(k)] = v
	}
	return flags
}

// entryPointPort is the port of an entry point's address, "[host]:port[/tcp]".
func entryPointPort(flags map[string]string, entryPoint string) (string, error) {
	addr, ok := flags["entrypoints."+strings.ToLower(entryPoint)+".address"]
	if !ok {
		return "", fmt.Errorf("no entry point %q", entryPoint)
	}
	addr, _, _ = strings.Cut(addr, "/")
	i := strings.LastIndex(addr, ":")
	if i < 0 || addr[i+1:] == "" {
		return "", fmt.Errorf("entry point %s: address %q has no port", entryPoint, addr)
	}
	return addr[i+1:], nil
}

// redirectPort is the port Traefik's HTTP-to-HTTPS redirection of an entry
// point sends browsers to (pkg/provider/traefik/internal.go,
// getRedirectPort): the port of `to` when it is ":<port>", otherwise the
// port in the address of the entry point `to` names, which is the port
// Traefik listens on in its container, not necessarily the one users reach.
func redirectPort(flags map[string]string, to string) (string, error) {
	if regexp.MustCompile(`^:[0-9]+$`).MatchString(to) {
		return to[1:], nil
	}
	return entryPointPort(flags, to)
}

// checkRedirects checks that every entry point that redirects HTTP to HTTPS
// sends browsers to a port where they reach one of the HTTPS entry points:
// reachable gives the ports users reach a container port on (compose's
// published ports, a Service's ports).
func checkRedirects(where string, flags map[string]string, httpsEntryPoints []string, reachable func(containerPort string) []string) error {
	var want []string
	for _, ep := range httpsEntryPoints {
		port, err := entryPointPort(flags, ep)
		if err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		want = append(want, reachable(port)...)
	}
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	redirects := 0
	for _, k := range keys {
		if !strings.HasPrefix(k, "entrypoints.") || !strings.HasSuffix(k, ".http.redirections.entrypoint.to") {
			continue
		}
		ep := strings.TrimSuffix(strings.TrimPrefix(k, "entrypoints."), ".http.redirections.entrypoint.to")
		port, err := redirectPort(flags, flags[k])
		if err != nil {
			return fmt.Errorf("%s: entry point %s: redirection: %v", where, ep, err)
		}
		if !containsString(want, port) {
			return fmt.Errorf("%s: entry point %s redirects HTTP to https://<host>:%s/, but users reach HTTPS on port(s) %v: write redirections.entrypoint.to=:%s", where, ep, port, want, firstOr(want, "443"))
		}
		redirects++
	}
	if redirects == 0 {
		return fmt.Errorf("%s: no entry point redirects HTTP to HTTPS (entrypoints.<name>.http.redirections.entrypoint.to)", where)
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func firstOr(list []string, def string) string {
	if len(list) == 0 {
		return def
	}
	return list[0]
}

// checkACMEResolver checks that Traefik's arguments define the certificate
// resolver name as Let's Encrypt through ACME, with an account email, a
// challenge and its storage on a volume that outlives the container.
func checkACMEResolver(where string, flags map[string]string, name string, volumes []string) error {
	p := "certificatesresolvers." + strings.ToLower(name) + ".acme."
	if flags[p+"email"] == "" {
		return fmt.Errorf("%s: certificate resolver %q: no --certificatesresolvers.%s.acme.email (Traefik's arguments define no such ACME resolver)", where, name, name)
	}
	storage := flags[p+"storage"]
	if storage == "" || !underAny(storage, volumes) {
		return fmt.Errorf("%s: certificate resolver %q: acme.storage %q is not on a volume (%v): certificates would be requested again on every restart", where, name, storage, volumes)
	}
	challenge := flags[p+"tlschallenge"] == "true" || flags[p+"dnschallenge.provider"] != ""
	if ep := flags[p+"httpchallenge.entrypoint"]; ep != "" {
		if _, err := entryPointPort(flags, ep); err != nil {
			return fmt.Errorf("%s: certificate resolver %q: httpchallenge.entrypoint: %v", where, name, err)
		}
		challenge = true
	}
	if !challenge {
		return fmt.Errorf("%s: certificate resolver %q has no challenge (acme.tlschallenge, acme.httpchallenge.entrypoint or acme.dnschallenge.provider)", where, name)
	}
	return nil
}

// checkComposeCertificates checks that every TLS router of the compose
// file gets a real certificate from an ACME resolver, not Traefik's
// self-signed default, which browsers warn about.
func checkComposeCertificates(name string, traefik map[string]interface{}, routers []labelRouter) error {
	flags := traefikFlags(listAt(traefik, "command"))
	var volumes []string
	for _, v := range listAt(traefik, "volumes") {
		s, _ := v.(string)
		if parts := strings.Split(s, ":"); len(parts) >= 2 {
			volumes = append(volumes, parts[1])
		}
	}
	if len(routers) == 0 {
		return fmt.Errorf("%s: no router serves TLS", name)
	}
	for _, r := range routers {
		if r.certResolver == "" {
			return fmt.Errorf("%s: router %s has TLS without traefik.http.routers.%s.tls.certresolver: Traefik would serve its self-signed default certificate", name, r.name, r.name)
		}
		if err := checkACMEResolver(name, flags, r.certResolver, volumes); err != nil {
			return err
		}
	}
	return nil
}

// routeHosts returns the hosts of Host(`...`) in a router rule.
func routeHosts(rule string) []string {
	var hosts []string
	for _, m := range regexp.MustCompile("Host\\(`([^`]+)`\\)").FindAllStringSubmatch(rule, -1) {
		hosts = append(hosts, m[1])
	}
	return hosts
}

// checkKubernetesCertificates checks that every IngressRoute with TLS gets
// a real certificate: from cert-manager (tls.secretName written by a
// Certificate for its hosts, from an ACME issuer whose challenge can reach
// Traefik) or from Traefik's ACME resolver (tls.certResolver).
func checkKubernetesCertificates(objects []exampleObject, flags map[string]string, mounts []string) error {
	find := func(kind, namespace, name string) *exampleObject {
		for i, o := range objects {
			if o.kind() == kind && stringAt(o.doc, "metadata", "name") == name && (namespace == "" || o.namespace() == namespace) {
				return &objects[i]
			}
		}
		return nil
	}
	routes := 0
	for _, o := range objects {
		tls := mapAt(o.doc, "spec", "tls")
		if o.kind() != "IngressRoute" || tls == nil {
			continue
		}
		routes++
		where := o.file + ": IngressRoute " + stringAt(o.doc, "metadata", "name")
		if resolver, _ := tls["certResolver"].(string); resolver != "" {
			if err := checkACMEResolver(where, flags, resolver, mounts); err != nil {
				return err
			}
			continue
		}
		secret, _ := tls["secretName"].(string)
		if secret == "" {
			return fmt.Errorf("%s: tls has neither secretName nor certResolver: Traefik would serve its self-signed default certificate", where)
		}
		var cert *exampleObject
		for i, c := range objects {
			if c.kind() == "Certificate" && c.namespace() == o.namespace() && stringAt(c.doc, "spec", "secretName") == secret {
				cert = &objects[i]
			}
		}
		if cert == nil || stringAt(cert.doc, "apiVersion") != "cert-manager.io/v1" {
			return fmt.Errorf("%s: no cert-manager Certificate (cert-manager.io/v1) in namespace %s writes the secret %q", where, o.namespace(), secret)
		}
		var names []string
		for _, n := range listAt(cert.doc, "spec", "dnsNames") {
			s, _ := n.(string)
			names = append(names, s)
		}
		for _, r := range listAt(o.doc, "spec", "routes") {
			for _, h := range routeHosts(stringAt(r, "match")) {
				if !containsString(names, h) {
					return fmt.Errorf("%s: host %s is not among the dnsNames %v of Certificate %s", where, h, names, stringAt(cert.doc, "metadata", "name"))
				}
			}
		}
		kind, issuerName := stringAt(cert.doc, "spec", "issuerRef", "kind"), stringAt(cert.doc, "spec", "issuerRef", "name")
		ns := ""
		if kind != "ClusterIssuer" {
			kind, ns = "Issuer", cert.namespace()
		}
		issuer := find(kind, ns, issuerName)
		if issuer == nil || stringAt(issuer.doc, "spec", "acme", "server") == "" {
			return fmt.Errorf("%s: Certificate %s: no ACME %s %q in the examples", where, stringAt(cert.doc, "metadata", "name"), kind, issuerName)
		}
		solvers := listAt(issuer.doc, "spec", "acme", "solvers")
		if len(solvers) == 0 {
			return fmt.Errorf("%s: %s %s has no solver", issuer.file, kind, issuerName)
		}
		for _, s := range solvers {
			class := stringAt(s, "http01", "ingress", "ingressClassName")
			if class == "" {
				continue
			}
			// cert-manager answers the HTTP-01 challenge with an Ingress of
			// that class on port 80: Traefik must serve Ingresses of the
			// class, and its HTTP-to-HTTPS redirection must let the
			// challenge path through.
			ic := find("IngressClass", "", class)
			if ic == nil || stringAt(ic.doc, "spec", "controller") != "traefik.io/ingress-controller" {
				return fmt.Errorf("%s: the HTTP-01 solver's ingressClassName %q is no IngressClass of Traefik's (controller traefik.io/ingress-controller)", issuer.file, class)
			}
			if _, ok := flags["providers.kubernetesingress"]; !ok {
				return fmt.Errorf("%s: the HTTP-01 solver answers with an Ingress, but Traefik's arguments lack --providers.kubernetesingress", issuer.file)
			}
			for k := range flags {
				if strings.HasPrefix(k, "entrypoints.") && strings.HasSuffix(k, ".http.redirections.entrypoint.to") {
					ep := strings.TrimSuffix(k, ".http.redirections.entrypoint.to")
					if flags[ep+".allowacmebypass"] != "true" {
						return fmt.Errorf("%s: the HTTP-01 challenge arrives on port 80, which --%s redirects to HTTPS: set --%s.allowacmebypass=true", issuer.file, k, ep)
					}
				}
			}
		}
	}
	if routes == 0 {
		return fmt.Errorf("no IngressRoute serves TLS")
	}
	return nil
}

// registeredRedirectURIs finds the redirect URIs a text tells users to
// register: for each portal base (https://<host>/portals/<portal>), the
// endpoints named under it.
func registeredRedirectURIs(text string) map[string][]string {
	found := map[string][]string{}
	re := regexp.MustCompile("(https://[^\\s`'\"()]+/portals/[a-z0-9<>-]+/)(oauth2/callback|signed-out)")
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if !containsString(found[m[1]], m[2]) {
			found[m[1]] = append(found[m[1]], m[2])
		}
	}
	for _, list := range found {
		sort.Strings(list)
	}
	return found
}

// Every place that says which redirect URIs to register says the same:
// the callback (sign-in) and the signed-out page, which sign-out sends to
// Entra ID as post_logout_redirect_uri and which Entra ID accepts only as
// a registered redirect URI of the app.
func TestEveryPlaceListsTheSameRedirectURIsToRegister(t *testing.T) {
	m, err := New(context.Background(), http.NotFoundHandler(), validConfig(), "uris")
	if err != nil {
		t.Fatal(err)
	}
	mw := m.(*Middleware)
	var want []string
	for _, p := range []string{mw.callbackPath, mw.signedOutPath} {
		want = append(want, strings.TrimPrefix(p, mw.prefix))
	}
	sort.Strings(want)

	readme := readExample(t, "readme.md")
	section := func(from, to string) string {
		i := strings.Index(readme, from)
		if i < 0 {
			t.Fatalf("the readme has no %q", from)
		}
		j := strings.Index(readme[i:], to)
		if j < 0 {
			t.Fatalf("the readme has no %q after %q", to, from)
		}
		return readme[i : i+j]
	}
	places := []struct{ where, text string }{
		{"readme: Quick start", section("## Quick start", "Static configuration")},
		{"readme: Exposure modes", section("## Exposure modes", "## Options")},
		{"readme: Development (make demo with a real tenant)", section("`make demo` serves", "Layout:")},
		{"examples/docker-compose/compose.yaml", readExample(t, "examples/docker-compose/compose.yaml")},
		{"examples/kubernetes/middleware.yaml", readExample(t, "examples/kubernetes/middleware.yaml")},
		// What make demo prints for a real tenant, and registers in the
		// dev tenant.
		{"scripts/demo.sh", readExample(t, "scripts/demo.sh")},
	}
	for _, p := range places {
		found := registeredRedirectURIs(p.text)
		if len(found) == 0 {
			t.Errorf("%s names no redirect URI to register; want %v under https://<host>/portals/<portal>/", p.where, want)
		}
		for base, got := range found {
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s: under %s it names %v, want %v", p.where, base, got, want)
			}
		}
	}
}
