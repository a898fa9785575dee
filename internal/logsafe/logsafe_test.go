package logsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLogValue(t *testing.T) {
	t.Parallel()
	// Short valid values are logged as they are.
	for _, s := range []string{"", "/webhooks/clerk-prod", "127.0.0.1:4711", "ünïcødé", strings.Repeat("x", MaxBytes)} {
		if got := Value(s); got != s {
			t.Errorf("Value(%q) = %q", s, got)
		}
	}
	cases := []struct {
		name, in string
		marker   bool
	}{
		{"1 MB path", "/webhooks/" + strings.Repeat("a", 1<<20), true},
		{"invalid UTF-8", "msg_\xff\xfe\x00id", false},
		{"a rune cut at the limit", strings.Repeat("x", MaxBytes-1) + "é" + strings.Repeat("y", 10), true},
		{"only invalid bytes", strings.Repeat("\xff", 4096), true},
		{"alternating invalid bytes", strings.Repeat("\xffa", 2048), true},
		{"truncated rune at the end", "abc\xe2\x82", false},
		{"short, but longer once repaired", strings.Repeat("\xffa", MaxBytes/2), true},
	}
	for _, c := range cases {
		got := Value(c.in)
		head, _, cut := strings.Cut(got, "…[truncated, ")
		switch {
		case !utf8.ValidString(got):
			t.Errorf("%s: not valid UTF-8: %q", c.name, got)
		case len(head) > MaxBytes:
			t.Errorf("%s: %d bytes kept, more than %d", c.name, len(head), MaxBytes)
		case cut != c.marker:
			t.Errorf("%s: marker %t, want %t: %q", c.name, cut, c.marker, got)
		case len(got) > MaxBytes+40:
			t.Errorf("%s: %d bytes", c.name, len(got))
		}
	}
	if got := Value("/webhooks/" + strings.Repeat("a", 1<<20)); !strings.HasSuffix(got, "…[truncated, 1048586 bytes]") {
		t.Errorf("the marker does not give the length: %q", got[len(got)-40:])
	}
	if got := Value(strings.Repeat("x", MaxBytes-1) + "é"); !strings.HasSuffix(got, "x…[truncated, 257 bytes]") {
		t.Errorf("a rune cut at the limit is dropped whole: %q", got[len(got)-40:])
	}
}
