// Package logsafe bounds what goes into a log line from the network: a request's path or header,
// a payload-derived id, an error that quotes its input. No sender can make a line much longer
// than a few hundred bytes, or invalid UTF-8.
package logsafe

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBytes bounds each logged value that comes from a request (a path, an address, a header,
// an error that may quote the input), so that no request can make the log much longer than the
// few hundred bytes of its one line.
const MaxBytes = 256

// Value returns s as it may be logged: valid UTF-8 (each run of invalid bytes becomes U+FFFD)
// and at most MaxBytes bytes of it; when anything was cut, a marker with the original length
// follows. The result is never longer than MaxBytes plus the marker, whatever s is.
func Value(s string) string {
	if len(s) <= MaxBytes && utf8.ValidString(s) {
		return s // the common case, without allocating
	}
	cut := len(s) > MaxBytes
	head := strings.ToValidUTF8(s[:runeBoundary(s, MaxBytes)], "\uFFFD")
	if len(head) > MaxBytes { // replacements can be longer than the bytes they replace
		head, cut = head[:runeBoundary(head, MaxBytes)], true
	}
	if !cut {
		return head
	}
	return head + "…[truncated, " + strconv.Itoa(len(s)) + " bytes]"
}

// runeBoundary returns the largest i <= n (and <= len(s)) that does not split a valid rune of s.
func runeBoundary(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return n // not a rune's continuation we could back off from: invalid bytes, replaced anyway
}
