package store

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestCleanJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a":"plain"}`, `{"a":"plain"}`},
		{`{"a":"x\u0000y"}`, `{"a":"x\ufffdy"}`},
		{`{"a":"\\u0000 is text"}`, `{"a":"\\u0000 is text"}`},
		{`{"a":"\u00e9\ud83d\ude00"}`, `{"a":"\u00e9\ud83d\ude00"}`},
		{`{"a":"\ud800 alone"}`, `{"a":"\ufffd alone"}`},
		{`{"a":"\udc00"}`, `{"a":"\ufffd"}`},
		{`{"a":"\ud800\u0041"}`, `{"a":"\ufffd\u0041"}`},
		{"{\"a\":\"bad \xff byte\"}", "{\"a\":\"bad \uFFFD byte\"}"},
		{`{"a\u0000":1}`, `{"a\ufffd":1}`},
	} {
		got, changed := cleanJSON([]byte(c.in))
		if string(got) != c.want || changed != (c.in != c.want) {
			t.Errorf("cleanJSON(%q) = %q, %v; want %q", c.in, got, changed, c.want)
		}
	}
}

// Whatever JSON encoding/json accepts, the cleaned text is still JSON, valid UTF-8, without NUL
// escapes or lone surrogates, and decodes to the same structure with U+FFFD in place of what
// Postgres refuses.
func FuzzCleanJSON(f *testing.F) {
	for _, s := range []string{`{"a":"x\u0000y"}`, `["\ud800"]`, "\"\xff\"", `{"\\u0000":"\\"}`, `"\ud83d\ude00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var before any
		if json.Unmarshal(b, &before) != nil {
			return
		}
		got, _ := cleanJSON(b)
		var after any
		if err := json.Unmarshal(got, &after); err != nil {
			t.Fatalf("cleaned %q into invalid JSON %q: %v", b, got, err)
		}
		if !utf8.Valid(got) {
			t.Fatalf("cleaned JSON is not UTF-8: %q", got)
		}
		again, changed := cleanJSON(got)
		if changed || string(again) != string(got) {
			t.Fatalf("cleaning is not idempotent: %q → %q", got, again)
		}
	})
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{"ok": "ok", "a\x00b": "a\uFFFDb", "bad\xff": "bad\uFFFD", "ü": "ü"} {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
}
