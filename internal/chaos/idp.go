package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// The load is what an IdP tenant sends: for each user a user.created, one to five user.updated
// with increasing updated_at (Unix ms), and for some a user.deleted after the last update. Every
// delivery has its own svix-id. The payloads have the shape of Clerk's published examples
// (internal/provider/clerk/testdata/webhooks/user.*.json).

// UserState is a user's state in the mirror, or what it should be.
type UserState struct {
	Deleted      bool
	FirstName    string
	LastName     string
	Username     string
	PrimaryEmail string
	Banned       bool
	// Version is the row's source_version: the state's updated_at, or the deletion's timestamp.
	Version int64
}

func (s UserState) String() string {
	if s.Deleted {
		return fmt.Sprintf("deleted at version %d", s.Version)
	}
	return fmt.Sprintf("{first_name %q, last_name %q, username %q, primary_email %q, banned %t, version %d}",
		s.FirstName, s.LastName, s.Username, s.PrimaryEmail, s.Banned, s.Version)
}

// Delivery is one webhook the IdP sends, and what became of it.
type Delivery struct {
	// ID is the delivery's svix-id, which Svix keeps across retries: the event id.
	ID     string
	UserID string
	// Type is Clerk's event type.
	Type string
	Body []byte
	// State is the user's state this event carries.
	State UserState

	// Acked is set once the receiver answered 2xx.
	Acked atomic.Bool
	// Attempts counts the HTTP requests made for it.
	Attempts atomic.Int32
}

// Plan is the deliveries of one run, in the order the IdP emits them: each user's events in order,
// users interleaved at random.
type Plan struct {
	Deliveries []*Delivery
	Users      int
}

// instanceID is the Clerk instance the suite's events come from.
const instanceID = "ins_2chaosIdpsyncSuite0000000000"

// NewPlan generates the events of users users with rng. runID makes the ids unique to the run.
func NewPlan(rng *rand.Rand, runID string, users int) *Plan {
	p := &Plan{Users: users}
	base := int64(1_750_000_000_000) // ms, a fixed past; versions only need to increase per user
	perUser := make([][]*Delivery, users)
	seq := 0
	next := func() string {
		seq++
		return fmt.Sprintf("msg_%s%06d", runID, seq)
	}
	for u := range users {
		id := fmt.Sprintf("user_%s%05d", runID, u)
		created := base + int64(u)*10 + rng.Int64N(10)
		st := UserState{
			FirstName: fmt.Sprintf("First%d", u), LastName: "Chaos", Username: fmt.Sprintf("user%d", u),
			PrimaryEmail: fmt.Sprintf("user%d.v0@example.com", u), Version: created,
		}
		evs := []*Delivery{userDelivery(next(), "user.created", id, created, st)}
		for k := range 1 + rng.IntN(5) {
			st.Version += 1 + rng.Int64N(5_000)
			st.LastName = fmt.Sprintf("Chaos%d", k+1)
			st.PrimaryEmail = fmt.Sprintf("user%d.v%d@example.com", u, k+1)
			if rng.IntN(3) == 0 {
				st.Banned = !st.Banned
			}
			if rng.IntN(2) == 0 {
				st.Username = fmt.Sprintf("user%d_%d", u, k+1)
			}
			evs = append(evs, userDelivery(next(), "user.updated", id, created, st))
		}
		if rng.IntN(10) < 3 {
			del := UserState{Deleted: true, Version: st.Version + 1 + rng.Int64N(5_000)}
			evs = append(evs, deletedDelivery(next(), id, del))
		}
		perUser[u] = evs
	}
	// Interleave the users at random, keeping each user's order.
	var remaining int
	for _, evs := range perUser {
		remaining += len(evs)
	}
	pos := make([]int, users)
	for remaining > 0 {
		// Pick an event at random among those left; its user's next event is emitted.
		k := rng.IntN(remaining)
		for u, evs := range perUser {
			left := len(evs) - pos[u]
			if k < left {
				p.Deliveries = append(p.Deliveries, evs[pos[u]])
				pos[u]++
				break
			}
			k -= left
		}
		remaining--
	}
	return p
}

// clerkEnvelope is the body of a Clerk webhook.
type clerkEnvelope struct {
	EventAttributes eventAttributes `json:"event_attributes"`
	Object          string          `json:"object"`
	Type            string          `json:"type"`
	InstanceID      string          `json:"instance_id"`
	// Timestamp is when the event happened, in ms (Clerk documents ms; its examples show seconds,
	// and idpsync reads both).
	Timestamp int64 `json:"timestamp"`
	Data      any   `json:"data"`
}

type eventAttributes struct {
	HTTPRequest struct {
		ClientIP  string `json:"client_ip"`
		UserAgent string `json:"user_agent"`
	} `json:"http_request"`
}

// clerkUser is Clerk's User object, every field of the published example.
type clerkUser struct {
	Object                        string         `json:"object"`
	ID                            string         `json:"id"`
	ExternalID                    *string        `json:"external_id"`
	PrimaryEmailAddressID         string         `json:"primary_email_address_id"`
	PrimaryPhoneNumberID          *string        `json:"primary_phone_number_id"`
	PrimaryWeb3WalletID           *string        `json:"primary_web3_wallet_id"`
	Username                      string         `json:"username"`
	FirstName                     string         `json:"first_name"`
	LastName                      string         `json:"last_name"`
	ProfileImageURL               string         `json:"profile_image_url"`
	ImageURL                      string         `json:"image_url"`
	HasImage                      bool           `json:"has_image"`
	PublicMetadata                map[string]any `json:"public_metadata"`
	PrivateMetadata               any            `json:"private_metadata"`
	UnsafeMetadata                map[string]any `json:"unsafe_metadata"`
	EmailAddresses                []clerkEmail   `json:"email_addresses"`
	PhoneNumbers                  []any          `json:"phone_numbers"`
	Web3Wallets                   []any          `json:"web3_wallets"`
	Passkeys                      []any          `json:"passkeys"`
	PasswordEnabled               bool           `json:"password_enabled"`
	TwoFactorEnabled              bool           `json:"two_factor_enabled"`
	TOTPEnabled                   bool           `json:"totp_enabled"`
	BackupCodeEnabled             bool           `json:"backup_code_enabled"`
	MFAEnabledAt                  *int64         `json:"mfa_enabled_at"`
	MFADisabledAt                 *int64         `json:"mfa_disabled_at"`
	ExternalAccounts              []any          `json:"external_accounts"`
	SAMLAccounts                  []any          `json:"saml_accounts"`
	EnterpriseAccounts            []any          `json:"enterprise_accounts"`
	LastSignInAt                  int64          `json:"last_sign_in_at"`
	Banned                        bool           `json:"banned"`
	Locked                        bool           `json:"locked"`
	LockoutExpiresInSeconds       *int64         `json:"lockout_expires_in_seconds"`
	VerificationAttemptsRemaining *int64         `json:"verification_attempts_remaining"`
	UpdatedAt                     int64          `json:"updated_at"`
	CreatedAt                     int64          `json:"created_at"`
	DeleteSelfEnabled             bool           `json:"delete_self_enabled"`
	CreateOrganizationEnabled     bool           `json:"create_organization_enabled"`
	CreateOrganizationsLimit      *int64         `json:"create_organizations_limit"`
	LastActiveAt                  int64          `json:"last_active_at"`
	LegalAcceptedAt               int64          `json:"legal_accepted_at"`
}

type clerkEmail struct {
	ID           string `json:"id"`
	Object       string `json:"object"`
	EmailAddress string `json:"email_address"`
	Reserved     bool   `json:"reserved"`
	Verification struct {
		Status   string `json:"status"`
		Strategy string `json:"strategy"`
	} `json:"verification"`
	LinkedTo []any `json:"linked_to"`
}

// clerkDeletedUser is the data of a user.deleted event.
type clerkDeletedUser struct {
	Object     string  `json:"object"`
	ID         string  `json:"id"`
	Deleted    bool    `json:"deleted"`
	ExternalID *string `json:"external_id"`
}

func envelope(typ string, ts int64, data any) []byte {
	env := clerkEnvelope{Object: "event", Type: typ, InstanceID: instanceID, Timestamp: ts, Data: data}
	env.EventAttributes.HTTPRequest.ClientIP = "192.0.2.10"
	env.EventAttributes.HTTPRequest.UserAgent = "idpsync-chaos"
	b, err := json.Marshal(env)
	if err != nil {
		panic(err) // only fixed types
	}
	return b
}

func userDelivery(id, typ, userID string, createdAt int64, st UserState) *Delivery {
	emailID := "idn_" + userID[len("user_"):]
	email := clerkEmail{ID: emailID, Object: "email_address", EmailAddress: st.PrimaryEmail, LinkedTo: []any{}}
	email.Verification.Status, email.Verification.Strategy = "verified", "email_code"
	u := clerkUser{
		Object: "user", ID: userID, PrimaryEmailAddressID: emailID, Username: st.Username,
		FirstName: st.FirstName, LastName: st.LastName,
		ProfileImageURL: "https://img.clerk.com/chaos", ImageURL: "https://img.clerk.com/chaos", HasImage: true,
		PublicMetadata: map[string]any{}, UnsafeMetadata: map[string]any{}, EmailAddresses: []clerkEmail{email},
		PhoneNumbers: []any{}, Web3Wallets: []any{}, Passkeys: []any{}, PasswordEnabled: true,
		ExternalAccounts: []any{}, SAMLAccounts: []any{}, EnterpriseAccounts: []any{},
		LastSignInAt: st.Version, Banned: st.Banned, UpdatedAt: st.Version, CreatedAt: createdAt,
		DeleteSelfEnabled: true, CreateOrganizationEnabled: true, LastActiveAt: st.Version, LegalAcceptedAt: createdAt,
	}
	return &Delivery{ID: id, UserID: userID, Type: typ, Body: envelope(typ, st.Version, u), State: st}
}

func deletedDelivery(id, userID string, st UserState) *Delivery {
	d := clerkDeletedUser{Object: "user", ID: userID, Deleted: true}
	return &Delivery{ID: id, UserID: userID, Type: "user.deleted", Body: envelope("user.deleted", st.Version, d), State: st}
}

// Expected returns the final state of each user, from the deliveries for which inEffect holds:
// a tombstone at the deletion's version once deleted (a deleted user never comes back), else the
// state with the highest updated_at. Users without such deliveries are absent.
func (p *Plan) Expected(inEffect func(*Delivery) bool) map[string]UserState {
	out := map[string]UserState{}
	for _, d := range p.Deliveries {
		if !inEffect(d) {
			continue
		}
		cur, ok := out[d.UserID]
		switch {
		case !ok:
			out[d.UserID] = d.State
		case cur.Deleted || d.State.Deleted:
			out[d.UserID] = UserState{Deleted: true, Version: max(cur.Version, d.State.Version)}
		case d.State.Version > cur.Version:
			out[d.UserID] = d.State
		}
	}
	return out
}
