package natsbus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natstest"
)

func TestSubjects(t *testing.T) {
	t.Parallel()
	bus := natstest.Start(t).Bus()
	cases := []struct {
		typ        events.Type
		sourceType string
		want       string
	}{
		{events.MembershipCreated, "organizationMembership.created", "idpsync.events.s1.membership.created"},
		{"", "email.created", "idpsync.events.s1.email.created"},
		{"", "weird type*with>wildcards", "idpsync.events.s1.weird_type_with_wildcards"},
		{"", "..a..b..", "idpsync.events.s1.a.b"},
		{"", "", "idpsync.events.s1.invalid"},
		{"", "a.b.c.d.e.f.g.h.i.j", "idpsync.events.s1.a.b.c.d.e.f.g.h"},
		{"", strings.Repeat("y", 10000) + ".created", "idpsync.events.s1." + strings.Repeat("y", 64) + ".created"},
		{"", strings.Repeat("é.", 5000), "idpsync.events.s1._._._._._._._._"},
	}
	for _, c := range cases {
		if got := bus.Subject("s1", c.typ, c.sourceType); got != c.want {
			t.Errorf("Subject(%q, %q) = %q, want %q", c.typ, c.sourceType, got, c.want)
		}
	}
	// Every event subject is inside the stream's subjects, so a publish cannot miss the stream.
	ev := &natsbus.Event{Source: "s1", EventID: "e1", SourceType: "weird type*with>wildcards",
		ReceivedAt: time.Now(), Body: []byte(`{}`)}
	if _, err := bus.Publish(context.Background(), ev); err != nil {
		t.Fatalf("publishing an unknown type: %v", err)
	}
}

// ReadStream reads what the stream held when it started, filtered by source, from a sequence or a
// time, and then stops.
func TestReadStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bus := natstest.Start(t).Bus()
	publish := func(source, id string) {
		ev := &natsbus.Event{Source: source, EventID: id, Type: events.UserCreated,
			ReceivedAt: time.Now(), Body: []byte(`{"type":"user.created"}`)}
		if _, err := bus.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		publish("a", fmt.Sprint("a", i))
		publish("b", fmt.Sprint("b", i))
	}
	read := func(source string, from natsbus.ReadFrom, batch int, during func()) []string {
		var ids []string
		err := bus.ReadStream(ctx, source, from, batch, func(ds []*natsbus.Delivery) error {
			for _, d := range ds {
				if d.DecodeErr != nil {
					t.Fatal(d.DecodeErr)
				}
				ids = append(ids, d.Event.EventID)
			}
			if during != nil {
				during()
				during = nil
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// A message published during a read is not part of it: the read ends where the stream ended.
	if got := read("a", natsbus.ReadFrom{}, 2, func() { publish("a", "late") }); fmt.Sprint(got) != "[a0 a1 a2 a3 a4]" {
		t.Errorf("source a: %v", got)
	}
	if got := read("", natsbus.ReadFrom{Seq: 9}, 100, nil); fmt.Sprint(got) != "[a4 b4 late]" {
		t.Errorf("from seq 9: %v", got)
	}
	if got := read("b", natsbus.ReadFrom{Time: time.Now().Add(time.Hour)}, 10, nil); len(got) != 0 {
		t.Errorf("from the future: %v", got)
	}
}
