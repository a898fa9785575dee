package events

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckID(t *testing.T) {
	for _, id := range []string{"msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "evt_1", "312909075211878808:313014806065971608:1",
		"sha256:0123abcd", "ünïcødé-id", "a b", "\uFFFD", strings.Repeat("x", MaxIDLen)} {
		if err := CheckID(id); err != nil {
			t.Errorf("CheckID(%q) = %v, want nil", id, err)
		}
	}
	for name, id := range map[string]string{
		"empty":          "",
		"too long":       strings.Repeat("x", MaxIDLen+1),
		"NUL":            "nul\x00id",
		"invalid UTF-8":  "msg_\xff\xfe",
		"truncated rune": "msg_\xe2\x82",
		"newline":        "a\nb",
		"carriage ret":   "a\rb",
		"tab":            "a\tb",
		"DEL":            "a\x7fb",
		"C1 control":     "a\u0085b",
		"line separator": "a\u2028b",
	} {
		err := CheckID(id)
		if !errors.Is(err, ErrInvalidID) {
			t.Errorf("%s: CheckID = %v, want ErrInvalidID", name, err)
		}
		if err != nil && len(id) > 0 && strings.Contains(err.Error(), id) {
			t.Errorf("%s: the error repeats the id: %v", name, err)
		}
	}
}

func FuzzCheckID(f *testing.F) {
	f.Add("msg_1")
	f.Add("nul\x00id")
	f.Fuzz(func(t *testing.T, id string) {
		if CheckID(id) != nil {
			return
		}
		if id == "" || len(id) > MaxIDLen || strings.ContainsAny(id, "\x00\r\n") || !utf8Valid(id) {
			t.Fatalf("CheckID accepted %q", id)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
