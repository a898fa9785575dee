package clerk

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The envelope scanner must read exactly what encoding/json reads from every body encoding/json
// accepts: a differential fuzz test against the standard library.
func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	files, _ := filepath.Glob("testdata/webhooks/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"TYPE":"a","type":"b"}`, `{"type":"a","Type":null}`, `{"t\u0079pe":"x"}`, `{"type":"\u00e9\ud800"}`,
		`{"timestamp":-0}`, `{"timestamp":01}`, `{"timestamp":1e3}`, `{"timestamp":+1}`, `{"type":"a\"b"}`,
		` { "data" : [ {"type":"inner"} , "]" ] , "type" : "outer" } `, `{"type":"x\xff"}`, `{}`, `[]`, `{"a":}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var want clerkEnvelope
		if json.Unmarshal(body, &want) != nil || want.Type == "" {
			return // encoding/json rejects it, or both report the type as missing
		}
		got, err := ParseEnvelope("id", body)
		if err != nil {
			t.Fatalf("encoding/json read %+v but the scanner failed: %v", want, err)
		}
		if got.SourceType != want.Type || !got.OccurredAt.Equal(unixSecondsOrMilli(want.Timestamp)) {
			t.Fatalf("scanner read type %q, occurred %v; encoding/json read %+v", got.SourceType, got.OccurredAt, want)
		}
	})
}
