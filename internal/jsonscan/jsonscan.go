// Package jsonscan reads a few top-level fields of a JSON object without decoding the rest.
//
// The receiver reads only a few top-level fields of each payload (the type, a timestamp) to route
// it, and does so on its hot path. encoding/json would decode the whole body to find them; Object
// walks the top-level object once, skipping nested values without decoding them.
//
// It agrees with encoding/json on every payload encoding/json accepts: keys match as
// encoding/json matches them (exactly or case-insensitively, escapes decoded), the last occurrence
// of a key wins, strings with escapes or non-ASCII bytes are decoded by encoding/json itself.
// It is not a validator: it may accept malformed JSON that a full parse will reject, which is the
// intended split of work (the worker's full parse dead-letters it).
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// ErrNotObject is returned by Object for a body that is not a JSON object.
var ErrNotObject = errors.New("not a JSON object")

// Object calls visit for every key of the top-level object in body, in order, with the raw bytes
// of the key (quotes included) and of its value.
func Object(body []byte, visit func(key, value []byte)) error {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return ErrNotObject
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return nil
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return ErrNotObject
		}
		keyEnd, ok := skipString(body, i)
		if !ok {
			return ErrNotObject
		}
		key := body[i:keyEnd]
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return ErrNotObject
		}
		i = skipSpace(body, i+1)
		valEnd, ok := skipValue(body, i)
		if !ok {
			return ErrNotObject
		}
		visit(key, body[i:valEnd])
		i = skipSpace(body, valEnd)
		if i >= len(body) {
			return ErrNotObject
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return nil
		default:
			return ErrNotObject
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j, j > i
}

// KeyIs reports whether the raw key (quotes included) names field as encoding/json matches
// struct fields: exactly, or else case-insensitively.
func KeyIs(rawKey []byte, field string) bool {
	k := rawKey[1 : len(rawKey)-1]
	if bytes.IndexByte(k, '\\') >= 0 {
		var s string
		if json.Unmarshal(rawKey, &s) != nil {
			return false
		}
		k = []byte(s)
	}
	return bytes.EqualFold(k, []byte(field))
}

// IsNull reports whether a raw value is JSON null, which encoding/json skips: the field keeps
// whatever an earlier occurrence of the key set.
func IsNull(raw []byte) bool { return string(raw) == "null" }

// String decodes a raw JSON string value. A string equal to a key of known is returned as that
// key, without allocating (known interns the names a caller expects, such as event types).
func String(raw []byte, known map[string]string) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' || c >= 0x80 || c < 0x20 {
			var s string // escapes, non-ASCII or control bytes: let encoding/json decide
			err := json.Unmarshal(raw, &s)
			return s, err == nil
		}
	}
	if k, ok := known[string(inner)]; ok { // no allocation for the usual names
		return k, true
	}
	return string(inner), true
}

// Int decodes a raw JSON integer value as encoding/json decodes into an int64.
func Int(raw []byte) (int64, bool) {
	if len(raw) > 1 && raw[0] == '0' || len(raw) > 2 && raw[0] == '-' && raw[1] == '0' {
		return 0, false // JSON forbids leading zeros
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil && raw[0] != '+'
}
