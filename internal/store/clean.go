package store

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// Postgres refuses the NUL character in text and jsonb values, invalid UTF-8 anywhere, and lone
// UTF-16 surrogate escapes in jsonb; an IdP may send any of them inside a correctly signed payload
// (a first name with "\u0000"). Such an event is still applied: what the mirror's text columns and
// the stored JSON (the mirror's raw, the event log's payload) keep is cleaned, each NUL character,
// invalid UTF-8 sequence and lone surrogate becoming U+FFFD, the Unicode replacement character.
// The verbatim bytes stay in the event log's payload_raw. Ids are never cleaned: the parsers
// refuse unusable ones (events.CheckID).

// cleanText returns s with every NUL and invalid UTF-8 sequence replaced by U+FFFD.
func cleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func cleanTexts(ss []string) []string {
	out := ss
	for i, s := range ss {
		if c := cleanText(s); c != s {
			if &out[0] == &ss[0] {
				out = append([]string(nil), ss...)
			}
			out[i] = c
		}
	}
	return out
}

// cleanJSON returns the JSON text b with every \u0000 escape and lone surrogate escape replaced by
// \ufffd and every invalid UTF-8 sequence by U+FFFD, and whether it changed anything. b is
// assumed to be JSON that encoding/json accepted.
func cleanJSON(b []byte) ([]byte, bool) {
	if utf8.Valid(b) && !bytes.Contains(b, []byte(`\u`)) && bytes.IndexByte(b, 0) < 0 {
		return b, false // the common case: nothing to look at
	}
	var out bytes.Buffer
	out.Grow(len(b))
	changed := false
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b) && b[i+1] != 'u':
			out.Write(b[i : i+2]) // any other escape, including \\ (so "\\u0000" stays text)
			i += 2
		case c == '\\' && i+5 < len(b):
			r, ok := hex4(b[i+2 : i+6])
			switch {
			case !ok:
				out.Write(b[i : i+2])
				i += 2
			case r == 0:
				out.WriteString(`\ufffd`)
				changed = true
				i += 6
			case r >= 0xD800 && r <= 0xDBFF: // a high surrogate must be followed by a low one
				if i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					if lo, ok := hex4(b[i+8 : i+12]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						out.Write(b[i : i+12])
						i += 12
						continue
					}
				}
				out.WriteString(`\ufffd`)
				changed = true
				i += 6
			case r >= 0xDC00 && r <= 0xDFFF: // a low surrogate alone
				out.WriteString(`\ufffd`)
				changed = true
				i += 6
			default:
				out.Write(b[i : i+6])
				i += 6
			}
		case c == 0:
			out.WriteString("\uFFFD")
			changed = true
			i++
		case c < utf8.RuneSelf:
			out.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				out.WriteString("\uFFFD")
				changed = true
			} else {
				out.Write(b[i : i+size])
			}
			i += size
		}
	}
	if !changed {
		return b, false
	}
	return out.Bytes(), true
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}
