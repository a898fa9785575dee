package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
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
		// decode checks every duration first, with the field and without echoing the value.
		return errors.New("not a duration")
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

var (
	durationType     = reflect.TypeFor[Duration]()
	timeDurationType = reflect.TypeFor[time.Duration]()
)

// decoder parses a configuration file: it expands ${NAME} references in every scalar, checks every
// key and every scalar against the field it fills (naming its path and line, and never echoing a
// value that came from the environment, which may be a secret), then decodes. It reports every
// problem at once, and remembers the line of each field for validation errors.
type decoder struct {
	getenv func(string) string
	errs   []fieldError
	lines  map[string]int
}

// fieldError is a problem of one field: its path (e.g. "sources[0].webhook.tolerance"), the line
// of the file it is on (0 when unknown), and a sentence.
type fieldError struct {
	path string
	line int
	msg  string
}

func (e fieldError) Error() string {
	switch {
	case e.path == "":
		return e.msg
	case e.line > 0:
		return fmt.Sprintf("%s (line %d): %s", e.path, e.line, e.msg)
	}
	return e.path + ": " + e.msg
}

// decode parses data into out.
func (d *decoder) decode(data []byte, out any) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml's syntax errors name a line and quote no value.
		d.errs = append(d.errs, fieldError{msg: "not valid YAML: " + err.Error()})
		return
	}
	if len(doc.Content) == 0 {
		return // an empty file: defaults only
	}
	root := doc.Content[0]
	d.walk(root, reflect.TypeOf(out).Elem(), "")
	if err := root.Decode(out); err != nil {
		// walk checked every scalar, so this is unexpected; yaml's messages quote values, which
		// may be secrets: keep only its line numbers.
		lines := regexp.MustCompile(`line \d+`).FindAllString(err.Error(), -1)
		d.errs = append(d.errs, fieldError{msg: "a value has the wrong type at " + strings.Join(lines, ", ")})
	}
}

func (d *decoder) fail(path string, line int, format string, args ...any) {
	d.errs = append(d.errs, fieldError{path: orRoot(path), line: line, msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return
		}
		v, ref, err := expand(n.Value, d.getenv)
		if err != nil {
			d.fail(path, n.Line, "%v", err)
			n.Value, n.Tag, n.Style = "", "", 0
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
		d.scalar(n, t, path, ref)
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			d.fail(path, n.Line, "a list is not allowed here")
			n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "!!null", "", nil
			return
		}
		for i, c := range n.Content {
			d.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.MappingNode:
		if t.Kind() == reflect.Map {
			for i := 0; i+1 < len(n.Content); i += 2 {
				d.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
			}
			return
		}
		if t.Kind() != reflect.Struct || t == durationType || t == timeDurationType {
			d.fail(path, n.Line, "a mapping is not allowed here")
			n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "!!null", "", nil
			return
		}
		fields := yamlFields(t)
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i]
			ft, ok := fields[key.Value]
			if !ok {
				d.fail(join(path, key.Value), key.Line, "unknown field; the fields here are %s", strings.Join(sortedKeys(fields), ", "))
				continue
			}
			d.walk(n.Content[i+1], ft, join(path, key.Value))
			kept = append(kept, key, n.Content[i+1])
		}
		n.Content = kept
	case yaml.AliasNode:
		d.fail(path, n.Line, "YAML aliases are not supported")
		n.Kind, n.Tag, n.Value, n.Alias = yaml.ScalarNode, "!!null", "", nil
	}
}

// scalar checks a scalar against the type it fills. A bad value is reported (quoted only when it
// was written in the file: ref names the environment variable it came from otherwise) and
// replaced by the type's zero value, so that decoding goes on and every problem is reported.
func (d *decoder) scalar(n *yaml.Node, t reflect.Type, path, ref string) {
	shown := strconv.Quote(n.Value)
	if ref != "" {
		shown = "the value of ${" + ref + "}"
	}
	zero := func(v string) { n.Value, n.Tag, n.Style = v, "", 0 }
	switch {
	case t == durationType || t == timeDurationType:
		if v, err := time.ParseDuration(n.Value); err != nil || v < 0 {
			d.fail(path, n.Line, "%s is not a duration; write a number with a unit, e.g. 30s, 5m or 168h", shown)
			zero("0s")
		}
	case t.Kind() == reflect.Bool:
		if _, err := strconv.ParseBool(n.Value); err != nil {
			d.fail(path, n.Line, "%s is not a boolean; write true or false", shown)
			zero("false")
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		if _, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits()); err != nil {
			d.fail(path, n.Line, "%s is not a whole number", shown)
			zero("0")
		}
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		if _, err := strconv.ParseFloat(n.Value, 64); err != nil {
			d.fail(path, n.Line, "%s is not a number", shown)
			zero("0")
		}
	case t.Kind() == reflect.String:
		n.Tag = "!!str" // 123 or yes written for a string field is that text
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		d.fail(path, n.Line, "a single value is not allowed here")
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", ""
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
// an error, so that a missing secret is reported rather than silently empty. ref is the name of the
// (last) variable whose value went into the result, "" when none did.
func expand(s string, getenv func(string) string) (out, ref string, err error) {
	if !strings.Contains(s, "$") {
		return s, "", nil
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
			return "", "", errors.New("a ${ reference has no closing }")
		}
		r := s[i+2 : i+end]
		name, def, hasDefault := strings.Cut(r, ":-")
		if !validEnvName(name) {
			return "", "", fmt.Errorf("${%s} is not a valid environment reference; write ${NAME} or ${NAME:-default}", r)
		}
		v := getenv(name)
		if v == "" {
			if !hasDefault {
				return "", "", fmt.Errorf("environment variable %s is not set (write ${%s:-} to allow it to be empty)", name, name)
			}
			v = def
		} else {
			ref = name
		}
		b.WriteString(v)
		i += end
	}
	return b.String(), ref, nil
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
