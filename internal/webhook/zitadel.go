package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ZitadelToleranceDefault is Zitadel's own default tolerance (pkg/actions DefaultTolerance).
const ZitadelToleranceDefault = 300 * time.Second

// ZitadelSigningHeader is the header Zitadel Actions v2 targets sign with. Some Zitadel docs name it
// X-ZITADEL-Signature; the verifier accepts both.
const ZitadelSigningHeader = "ZITADEL-Signature"

// Zitadel verifies Zitadel Actions v2 signatures: "t=<unix>,v1=<hex>" where the HMAC-SHA256 key is
// the target's signing key (its bytes, not base64) and the message is "<t>.<raw body>".
type Zitadel struct {
	keys      [][]byte
	tolerance time.Duration
	now       func() time.Time
}

var _ Verifier = (*Zitadel)(nil)

// ZitadelConfig configures a Zitadel verifier.
type ZitadelConfig struct {
	// SigningKeys are the target's signing keys as Zitadel returned them; each is tried in turn.
	// Empty entries are ignored; at least one is required.
	SigningKeys []string
	// Tolerance is how far the signed timestamp may be from now. Defaults to ZitadelToleranceDefault.
	Tolerance time.Duration
	// NowFunc returns the current time. Defaults to time.Now.
	NowFunc func() time.Time
}

// NewZitadel returns a verifier for cfg.
func NewZitadel(cfg ZitadelConfig) (*Zitadel, error) {
	keys := nonEmpty(cfg.SigningKeys)
	if len(keys) == 0 {
		return nil, errors.New("at least one signing key is required")
	}
	v := &Zitadel{tolerance: cfg.Tolerance, now: cfg.NowFunc}
	if v.tolerance <= 0 {
		v.tolerance = ZitadelToleranceDefault
	}
	if v.now == nil {
		v.now = time.Now
	}
	for _, k := range keys {
		v.keys = append(v.keys, []byte(k))
	}
	return v, nil
}

// Verify implements Verifier. Zitadel sends no delivery id; the parser derives the event id from
// the payload (instance, aggregate and sequence).
func (v *Zitadel) Verify(body []byte, h http.Header) (Delivery, error) {
	header := h.Get(ZitadelSigningHeader)
	if header == "" {
		header = h.Get("X-" + ZitadelSigningHeader)
	}
	if header == "" {
		return Delivery{}, fmt.Errorf("%w: %s", ErrSignatureMissing, ZitadelSigningHeader)
	}
	var (
		ts   string
		sigs [][]byte
	)
	for part := range strings.SplitSeq(header, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = val
		case "v1":
			if sig, err := hex.DecodeString(val); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
	}
	if ts == "" {
		return Delivery{}, fmt.Errorf("%w: %s has no t= timestamp", ErrMalformedHeader, ZitadelSigningHeader)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Delivery{}, fmt.Errorf("%w: %s timestamp is not an integer", ErrMalformedHeader, ZitadelSigningHeader)
	}
	if len(sigs) == 0 {
		return Delivery{}, fmt.Errorf("%w: %s has no v1= signature", ErrSignatureMissing, ZitadelSigningHeader)
	}
	signedAt := time.Unix(secs, 0)
	if err := checkFreshness(signedAt, v.now(), v.tolerance); err != nil {
		return Delivery{}, err
	}
	for _, key := range v.keys {
		want := zitadelMAC(key, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return Delivery{Timestamp: signedAt}, nil
			}
		}
	}
	return Delivery{}, ErrSignatureInvalid
}

func zitadelMAC(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SignZitadel returns the ZITADEL-Signature header value for body signed at ts, one v1 entry per key,
// exactly as Zitadel's pkg/actions ComputeSignatureHeader does.
func SignZitadel(ts time.Time, body []byte, signingKeys ...string) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(t)
	for _, k := range signingKeys {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(zitadelMAC([]byte(k), t, body)))
	}
	return b.String()
}
