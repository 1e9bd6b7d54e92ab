package entraauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// How Traefik v3.6 turns a plugin's options into Config, redone with the
// standard library for the tests of the examples and the readme (the e2e
// suite proves the real thing through Traefik's Docker provider):
//
//   - Docker labels go through Traefik's label parser (paerser): the keys
//     after traefik.http.middlewares.<name>.plugin.<plugin>. split on '.'
//     into nested maps, keys merged case-insensitively, "name[0]",
//     "name[1]"... into a list; every value a string
//     (parser.DecodeToNode, nodeToRawMap).
//   - The Kubernetes CRD provider replaces every string
//     "urn:k8s:secret:<name>:<key>" with that key of a Secret
//     (crd/kubernetes.go, loadSecretKeys).
//   - The plugin loader decodes onto CreateConfig() with mapstructure,
//     WeaklyTypedInput and StringToSliceHookFunc(","): option names match
//     field names case-insensitively, "a,b" becomes a list, "true" a bool
//     (plugins/middlewareyaegi.go).
//     Keys that match no field go into the struct's field tagged
//     `mapstructure:",remain"`, or are dropped when it has none
//     (mapstructure.go, decodeStructFromMap).
//   - The Kubernetes CRD provider hands over a Middleware's
//     spec.plugin.<plugin> as JSON decoded into map[string]interface{}:
//     booleans stay booleans, lists are []interface{}.

// labelNode is a node of paerser's tree.
type labelNode struct {
	name     string
	value    string
	children []*labelNode
}

func (n *labelNode) child(name string) *labelNode {
	for _, c := range n.children {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	c := &labelNode{name: name}
	n.children = append(n.children, c)
	return c
}

// pluginConfigsFromLabels returns the plugin options of every middleware the
// labels define for plugin, by middleware name.
func pluginConfigsFromLabels(labels map[string]string, plugin string) (map[string]map[string]interface{}, error) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	// paerser sorts the keys; children keep the order they first appear in.
	sort.Strings(keys)
	roots := map[string]*labelNode{}
	for _, key := range keys {
		parts := strings.Split(key, ".")
		if len(parts) < 7 || !strings.EqualFold(strings.Join(parts[:3], "."), "traefik.http.middlewares") ||
			!strings.EqualFold(parts[4], "plugin") || !strings.EqualFold(parts[5], plugin) {
			continue
		}
		root := roots[parts[3]]
		if root == nil {
			root = &labelNode{name: parts[3]}
			roots[parts[3]] = root
		}
		n := root
		for _, p := range parts[6:] {
			if p == "" {
				return nil, fmt.Errorf("label %s: empty element", key)
			}
			if p[0] == '[' {
				return nil, fmt.Errorf("label %s: invalid leading character '[' in field name", key)
			}
			if strings.HasSuffix(p, "]") {
				i := strings.Index(p, "[")
				n = n.child(p[:i]).child(p[i:])
				continue
			}
			n = n.child(p)
		}
		n.value = labels[key]
	}
	out := map[string]map[string]interface{}{}
	for name, root := range roots {
		out[name] = squashLabels(root).(map[string]interface{})
	}
	return out, nil
}

// squashLabels is paerser's squashNode: leaves are strings, a node whose
// children are [i] a list, any other a map.
func squashLabels(n *labelNode) interface{} {
	if len(n.children) == 0 {
		return n.value
	}
	if strings.HasPrefix(n.children[0].name, "[") {
		list := make([]interface{}, 0, len(n.children))
		for _, c := range n.children {
			list = append(list, squashLabels(c))
		}
		return list
	}
	m := map[string]interface{}{}
	for _, c := range n.children {
		m[c.name] = squashLabels(c)
	}
	return m
}

// loadSecretKeys replaces "urn:k8s:secret:<name>:<key>" strings anywhere in
// v with the key of the named secret, as Traefik's Kubernetes CRD provider
// does.
func loadSecretKeys(v interface{}, secrets map[string]map[string]string) (interface{}, error) {
	switch x := v.(type) {
	case string:
		if !strings.HasPrefix(x, "urn:k8s:secret:") {
			return x, nil
		}
		parts := strings.Split(x, ":")
		if len(parts) != 5 {
			return nil, fmt.Errorf("malformed secret URN %q", x)
		}
		secret, ok := secrets[parts[3]]
		if !ok {
			return nil, fmt.Errorf("secret %s is not found", parts[3])
		}
		value, ok := secret[parts[4]]
		if !ok {
			return nil, fmt.Errorf("key %q not found in secret %s", parts[4], parts[3])
		}
		return value, nil
	case []interface{}:
		for i := range x {
			r, err := loadSecretKeys(x[i], secrets)
			if err != nil {
				return nil, err
			}
			x[i] = r
		}
	case map[string]interface{}:
		for k := range x {
			r, err := loadSecretKeys(x[k], secrets)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
	}
	return v, nil
}

// decodeLikeTraefik decodes raw plugin options onto c, as Traefik's plugin
// loader does: options that are no field of Config end up in the remain
// field of their block, where validate finds them.
func decodeLikeTraefik(raw map[string]interface{}, c *Config) error {
	return decodeOption("", raw, reflect.ValueOf(c).Elem())
}

func decodeOption(path string, raw interface{}, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Struct:
		m, ok := raw.(map[string]interface{})
		if !ok {
			return fmt.Errorf("%s: want nested options, got %q", path, fmt.Sprint(raw))
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t := v.Type()
		for _, key := range keys {
			i := fieldIndex(t, key)
			if i < 0 {
				if r := remainIndex(t); r >= 0 {
					if v.Field(r).IsNil() {
						v.Field(r).Set(reflect.ValueOf(map[string]interface{}{}))
					}
					v.Field(r).SetMapIndex(reflect.ValueOf(key), reflect.ValueOf(m[key]))
				}
				continue
			}
			if err := decodeOption(optionPath(path, optionName(t.Field(i))), m[key], v.Field(i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("%s: want a string, got %T", path, raw)
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		if b, ok := raw.(bool); ok {
			v.SetBool(b)
			return nil
		}
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("%s: want true or false, got %T", path, raw)
		}
		if s == "" {
			v.SetBool(false)
			return nil
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%s: %q is not a boolean", path, s)
		}
		v.SetBool(b)
		return nil
	case reflect.Slice:
		var list []string
		switch x := raw.(type) {
		case string:
			// StringToSliceHookFunc(","): a split at every comma.
			list = []string{}
			if x != "" {
				list = strings.Split(x, ",")
			}
		case []interface{}:
			for _, item := range x {
				s, ok := item.(string)
				if !ok {
					return fmt.Errorf("%s: want a list of strings, got an item %T", path, item)
				}
				list = append(list, s)
			}
		default:
			return fmt.Errorf("%s: want a list, got %T", path, raw)
		}
		v.Set(reflect.ValueOf(list))
		return nil
	case reflect.Map:
		m, ok := raw.(map[string]interface{})
		if !ok {
			return fmt.Errorf("%s: want a map, got %q", path, fmt.Sprint(raw))
		}
		out := map[string]string{}
		for k, item := range m {
			s, ok := item.(string)
			if !ok {
				return fmt.Errorf("%s.%s: want a string, got %T", path, k, item)
			}
			out[k] = s
		}
		v.Set(reflect.ValueOf(out))
		return nil
	}
	return fmt.Errorf("%s: no decoding for %s", path, v.Kind())
}

// fieldIndex finds the field an option names: mapstructure tries the exact
// field name, then any case, never the remain field.
func fieldIndex(t reflect.Type, key string) int {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Name == key && !isRemain(t.Field(i)) {
			return i
		}
	}
	for i := 0; i < t.NumField(); i++ {
		if strings.EqualFold(t.Field(i).Name, key) && !isRemain(t.Field(i)) {
			return i
		}
	}
	return -1
}

// remainIndex is the field that collects a struct's unmatched keys, or -1.
func remainIndex(t reflect.Type) int {
	for i := 0; i < t.NumField(); i++ {
		if isRemain(t.Field(i)) {
			return i
		}
	}
	return -1
}

func isRemain(f reflect.StructField) bool {
	parts := strings.Split(f.Tag.Get("mapstructure"), ",")
	for _, p := range parts[1:] {
		if p == "remain" {
			return true
		}
	}
	return false
}

// optionName is a field's documented option name (its json tag).
func optionName(f reflect.StructField) string {
	if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
		return name
	}
	return f.Name
}

// Every block of Config must collect the keys Traefik matches to no field,
// or a misspelt option in a block without one would be dropped unseen.
func TestEveryBlockOfConfigCollectsUnknownOptions(t *testing.T) {
	var check func(path string, typ reflect.Type)
	check = func(path string, typ reflect.Type) {
		r := remainIndex(typ)
		if r < 0 {
			t.Errorf("%s: no field tagged `mapstructure:\",remain\"`", path)
		} else if f := typ.Field(r); f.Type != reflect.TypeOf(map[string]interface{}{}) || f.Tag.Get("json") != "-" {
			t.Errorf("%s.%s: want map[string]interface{} with json:\"-\", got %s %q", path, f.Name, f.Type, f.Tag)
		}
		for i := 0; i < typ.NumField(); i++ {
			if f := typ.Field(i); f.Type.Kind() == reflect.Struct {
				check(optionPath(path, optionName(f)), f.Type)
			}
		}
	}
	check("Config", reflect.TypeOf(Config{}))
}

// The three ways Traefik hands options over, each with a misspelt one: New
// must refuse it by name.
func TestMisspeltOptionsAreRefusedFromEveryProvider(t *testing.T) {
	const want = "unknown option allowedGroup: did you mean allowedGroups?"
	const wantNested = "unknown option session.lifetme: did you mean session.lifetime?"

	// Docker labels: flat strings.
	p := "traefik.http.middlewares.entra.plugin.entraauth."
	configs, err := pluginConfigsFromLabels(map[string]string{
		p + "microsoftEntraID.tenantID":     testTenantID,
		p + "microsoftEntraID.clientID":     testClientID,
		p + "microsoftEntraID.clientSecret": "client-secret-value",
		p + "session.secret":                testSecret,
		p + "session.lifetme":               "30m",
		p + "allowedGroup":                  alice.Groups[0],
	}, "entraauth")
	if err != nil {
		t.Fatal(err)
	}
	fromLabels := configs["entra"]

	// A Kubernetes Middleware: spec.plugin.entraauth as JSON (what the API
	// server stores; the CRD provider unmarshals it into a map and
	// resolves secret URNs), booleans and lists as JSON has them.
	var fromCRD map[string]interface{}
	crd := `{"microsoftEntraID": {"tenantID": "` + testTenantID + `", "clientID": "` + testClientID + `",
		"clientSecret": "urn:k8s:secret:entraauth:client-secret"},
		"session": {"secret": "urn:k8s:secret:entraauth:session-secret", "renew": true, "lifetme": "30m"},
		"allowedGroup": ["` + alice.Groups[0] + `"]}`
	if err := json.Unmarshal([]byte(crd), &fromCRD); err != nil {
		t.Fatal(err)
	}
	resolved, err := loadSecretKeys(fromCRD, map[string]map[string]string{"entraauth": {"client-secret": "client-secret-value", "session-secret": testSecret}})
	if err != nil {
		t.Fatal(err)
	}

	// The file provider: YAML's nested maps and lists.
	fromFile := rawValidConfig()
	fromFile["allowedGroup"] = []interface{}{alice.Groups[0]}
	fromFile["session"].(map[string]interface{})["lifetme"] = "30m"

	for name, raw := range map[string]map[string]interface{}{"labels": fromLabels, "CRD": resolved.(map[string]interface{}), "file": fromFile} {
		c := CreateConfig()
		if err := decodeLikeTraefik(raw, c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err := New(context.Background(), http.NotFoundHandler(), c, "test")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), wantNested) {
			t.Errorf("%s: New: %v, want %q and %q", name, err, want, wantNested)
		}
		// Without the misspelt options, the same configuration is valid.
		c.Unknown = nil
		c.Session.Unknown = nil
		if _, err := New(context.Background(), http.NotFoundHandler(), c, "test"); err != nil {
			t.Errorf("%s without the misspelt options: New: %v", name, err)
		}
	}
}
