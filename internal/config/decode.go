package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as "30s", "5m" or "168h".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration; write a number with a unit, e.g. 30s, 5m or 168h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// decode parses data into out: it expands ${NAME} references in every scalar, rejects keys that
// out has no field for (naming their path and line), then decodes.
func decode(data []byte, getenv func(string) string, out any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file: defaults only
	}
	root := doc.Content[0]
	var errs []error
	walk(root, reflect.TypeOf(out).Elem(), "", getenv, &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := root.Decode(out); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	return nil
}

func walk(n *yaml.Node, t reflect.Type, path string, getenv func(string) string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return
		}
		v, err := expand(n.Value, getenv)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s (line %d): %w", orRoot(path), n.Line, err))
			return
		}
		if v != n.Value {
			// The expanded value is a string, whatever it looks like: a secret "123" or "yes"
			// must not become a number or a boolean.
			n.Value, n.Tag, n.Style = v, "!!str", yaml.DoubleQuotedStyle
			if t.Kind() != reflect.String {
				n.Tag, n.Style = "", 0 // numbers and durations from the environment are parsed as YAML
			}
		}
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			*errs = append(*errs, fmt.Errorf("%s (line %d): a list is not allowed here", orRoot(path), n.Line))
			return
		}
		for i, c := range n.Content {
			walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), getenv, errs)
		}
	case yaml.MappingNode:
		if t.Kind() == reflect.Map {
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), getenv, errs)
			}
			return
		}
		if t.Kind() != reflect.Struct {
			*errs = append(*errs, fmt.Errorf("%s (line %d): a mapping is not allowed here", orRoot(path), n.Line))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i]
			ft, ok := fields[key.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s (line %d): unknown field; the fields here are %s",
					join(path, key.Value), key.Line, strings.Join(sortedKeys(fields), ", ")))
				continue
			}
			walk(n.Content[i+1], ft, join(path, key.Value), getenv, errs)
		}
	case yaml.AliasNode:
		*errs = append(*errs, fmt.Errorf("%s (line %d): YAML aliases are not supported", orRoot(path), n.Line))
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
	}
	return fields
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// expand replaces ${NAME} with the variable's value and ${NAME:-default} with the value or, when
// unset or empty, the default. "$$" is a literal "$". A ${NAME} whose variable is unset or empty is
// an error, so that a missing secret is reported rather than silently empty.
func expand(s string, getenv func(string) string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", errors.New("a ${ reference has no closing }")
		}
		ref := s[i+2 : i+end]
		name, def, hasDefault := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("${%s} is not a valid environment reference; write ${NAME} or ${NAME:-default}", ref)
		}
		v := getenv(name)
		if v == "" {
			if !hasDefault {
				return "", fmt.Errorf("environment variable %s is not set (write ${%s:-} to allow it to be empty)", name, name)
			}
			v = def
		}
		b.WriteString(v)
		i += end
	}
	return b.String(), nil
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}
