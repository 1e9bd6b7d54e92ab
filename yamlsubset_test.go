package entraauth

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A reader for the subset of YAML the examples are written in, so that a
// test can check them with the standard library alone (the plugin has no
// dependencies, and its tests run under Yaegi too): documents separated by
// "---", block mappings and sequences by indentation (a sequence may sit at
// its key's indentation, kubectl style), "- key: value" items, flow
// sequences of scalars ([a, "b"]), the empty flow mapping {}, plain,
// single- and double-quoted scalars, and comments. Every scalar is a
// string: Traefik's decoding of plugin options is weakly typed, so "true"
// and true end up the same. Anything else (anchors, block scalars, nested
// flow collections) is an error, never a silent misreading.

type yamlLine struct {
	num    int // 1-based, for errors
	indent int
	text   string // without indentation and comment
}

// parseYAML returns the documents of src.
func parseYAML(src string) ([]interface{}, error) {
	var docs []interface{}
	var lines []yamlLine
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		p := &yamlParser{lines: lines}
		v, err := p.block(lines[0].indent)
		if err != nil {
			return err
		}
		if p.pos < len(p.lines) {
			return p.errorf("unexpected indentation")
		}
		docs = append(docs, v)
		lines = nil
		return nil
	}
	for i, raw := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		if strings.TrimRight(raw, " ") == "---" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if strings.Contains(raw, "\t") && strings.TrimLeft(raw, "\t ") != strings.TrimLeft(raw, " ") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		text := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(text)
		text, err := stripComment(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		if text == "" {
			continue
		}
		lines = append(lines, yamlLine{num: i + 1, indent: indent, text: text})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

// stripComment drops a comment: '#' at the start or after white space,
// outside quotes.
func stripComment(s string) (string, error) {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			if i == 0 || strings.ContainsRune(" [,:-{", rune(s[i-1])) {
				quote = c
			}
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " "), nil
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("unterminated quote")
	}
	return strings.TrimRight(s, " "), nil
}

type yamlParser struct {
	lines []yamlLine
	pos   int
}

func (p *yamlParser) errorf(format string, args ...interface{}) error {
	num := 0
	if p.pos < len(p.lines) {
		num = p.lines[p.pos].num
	} else if len(p.lines) > 0 {
		num = p.lines[len(p.lines)-1].num
	}
	return fmt.Errorf("line %d: %s", num, fmt.Sprintf(format, args...))
}

func isSequenceItem(text string) bool {
	return text == "-" || strings.HasPrefix(text, "- ")
}

// block parses the mapping or sequence whose lines sit at indent.
func (p *yamlParser) block(indent int) (interface{}, error) {
	if p.pos >= len(p.lines) || p.lines[p.pos].indent != indent {
		return nil, p.errorf("expected a block at indentation %d", indent)
	}
	// Assigned first: Yaegi loses the error of a concrete result returned
	// straight into an interface one.
	var v interface{}
	var err error
	if isSequenceItem(p.lines[p.pos].text) {
		v, err = p.sequence(indent)
	} else {
		v, err = p.mapping(indent)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (p *yamlParser) sequence(indent int) ([]interface{}, error) {
	out := []interface{}{}
	for p.pos < len(p.lines) && p.lines[p.pos].indent == indent && isSequenceItem(p.lines[p.pos].text) {
		l := p.lines[p.pos]
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		if rest == "" {
			p.pos++
			if p.pos >= len(p.lines) || p.lines[p.pos].indent <= indent {
				out = append(out, "")
				continue
			}
			v, err := p.block(p.lines[p.pos].indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		if _, _, ok := splitKey(rest); ok {
			// "- key: value": a mapping whose other keys line up with key.
			inner := indent + len(l.text) - len(rest)
			p.lines[p.pos] = yamlLine{num: l.num, indent: inner, text: rest}
			m, err := p.mapping(inner)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
			continue
		}
		v, err := scalarOrFlow(rest)
		if err != nil {
			return nil, p.errorf("%v", err)
		}
		out = append(out, v)
		p.pos++
	}
	return out, nil
}

func (p *yamlParser) mapping(indent int) (map[string]interface{}, error) {
	out := map[string]interface{}{}
	for p.pos < len(p.lines) && p.lines[p.pos].indent == indent {
		l := p.lines[p.pos]
		if isSequenceItem(l.text) {
			return nil, p.errorf("a sequence item among mapping keys")
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, p.errorf("expected key: value, got %q", l.text)
		}
		if _, dup := out[key]; dup {
			return nil, p.errorf("duplicate key %q", key)
		}
		p.pos++
		if rest != "" {
			v, err := scalarOrFlow(rest)
			if err != nil {
				return nil, p.errorf("%s: %v", key, err)
			}
			out[key] = v
			continue
		}
		switch {
		case p.pos < len(p.lines) && p.lines[p.pos].indent > indent:
			v, err := p.block(p.lines[p.pos].indent)
			if err != nil {
				return nil, err
			}
			out[key] = v
		case p.pos < len(p.lines) && p.lines[p.pos].indent == indent && isSequenceItem(p.lines[p.pos].text):
			v, err := p.sequence(indent)
			if err != nil {
				return nil, err
			}
			out[key] = v
		default:
			out[key] = ""
		}
	}
	if p.pos < len(p.lines) && p.lines[p.pos].indent > indent {
		return nil, p.errorf("unexpected indentation")
	}
	return out, nil
}

// splitKey splits "key: value" (or "key:"), the key plain or quoted.
func splitKey(s string) (key, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "'") {
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return "", "", false
		}
		k, err := scalar(s[:end+2])
		after := s[end+2:]
		if err != nil || !(after == ":" || strings.HasPrefix(after, ": ")) {
			return "", "", false
		}
		return k, strings.TrimSpace(strings.TrimPrefix(after, ":")), true
	}
	i := strings.Index(s, ": ")
	if i < 0 {
		if !strings.HasSuffix(s, ":") {
			return "", "", false
		}
		i = len(s) - 1
	}
	key = s[:i]
	if key == "" || strings.ContainsAny(key[:1], "[{&*!|>%@`") {
		return "", "", false
	}
	return key, strings.TrimSpace(s[i+1:]), true
}

// scalarOrFlow reads a value on a key's or item's line.
func scalarOrFlow(s string) (interface{}, error) {
	switch {
	case s == "{}":
		return map[string]interface{}{}, nil
	case strings.HasPrefix(s, "["):
		if !strings.HasSuffix(s, "]") {
			return nil, fmt.Errorf("a flow sequence must end on its line: %q", s)
		}
		out := []interface{}{}
		inner := strings.TrimSpace(s[1 : len(s)-1])
		if inner == "" {
			return out, nil
		}
		for _, item := range splitFlow(inner) {
			v, err := scalar(strings.TrimSpace(item))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	v, err := scalar(s) // assigned first, as in block

	if err != nil {
		return nil, err
	}
	return v, nil
}

// splitFlow splits a flow sequence's items at commas outside quotes.
func splitFlow(s string) []string {
	var items []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ',':
			items = append(items, s[start:i])
			start = i + 1
		}
	}
	return append(items, s[start:])
}

// scalar reads a plain or quoted scalar.
func scalar(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		v, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("bad double-quoted string %s", s)
		}
		return v, nil
	case strings.HasPrefix(s, "'"):
		if len(s) < 2 || !strings.HasSuffix(s, "'") {
			return "", fmt.Errorf("bad single-quoted string %s", s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case s == "" || strings.ContainsAny(s[:1], "[]{}&*!|>%@`"):
		return "", fmt.Errorf("%q is outside the YAML subset the examples use", s)
	}
	return s, nil
}

func TestTheYAMLSubsetReaderReadsTheExamplesFormsAndRefusesTheRest(t *testing.T) {
	docs, err := parseYAML(`# a comment
a: 1 # trailing comment
b:
- x
- "y # not a comment"
c:
  - name: n
    value: 'it''s'
  - [p, "q, r"]
d: {}
---
e: url#fragment
`)
	if err != nil {
		t.Fatal(err)
	}
	want := `[map[a:1 b:[x y # not a comment] c:[map[name:n value:it's] [p q, r]] d:map[]] map[e:url#fragment]]`
	if got := fmt.Sprint(docs); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for _, bad := range []string{
		"a: |\n  text\n",      // block scalar
		"a: &x 1\nb: *x\n",    // anchors
		"a:\n\tb: 1\n",        // tab indentation
		"a: 1\n  b: 2\n",      // stray indentation
		"a: 1\na: 2\n",        // duplicate key
		"a: [x, [y]]\n",       // nested flow collection
		"a: \"open\n",         // unterminated quote
		"a:\n  - x\n  b: 1\n", // sequence and mapping mixed
	} {
		if docs, err := parseYAML(bad); err == nil {
			t.Errorf("%q: read as %v, want an error", bad, docs)
		}
	}
}
