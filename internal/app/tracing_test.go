package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/intake"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
	"github.com/idpsync/idpsync/internal/receiver"
)

// spans is what a traced stack exported, with ways to find a trace's spans in it.
type spans struct {
	t   *testing.T
	exp *tracetest.InMemoryExporter
}

// traced returns a tracer provider exporting every span to memory as it ends.
func traced(t *testing.T) (trace.TracerProvider, *spans) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, &spans{t: t, exp: exp}
}

func spanAttrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, a := range s.Attributes {
		m[string(a.Key)] = a.Value.String()
	}
	return m
}

// find waits until a span named name whose attributes include want has ended, and returns it.
func (sp *spans) find(name string, want map[string]string) tracetest.SpanStub {
	sp.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, s := range sp.exp.GetSpans() {
			if s.Name != name {
				continue
			}
			got, ok := spanAttrs(s), true
			for k, v := range want {
				ok = ok && got[k] == v
			}
			if ok {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range sp.exp.GetSpans() {
				names = append(names, fmt.Sprintf("%s%v", s.Name, spanAttrs(s)))
			}
			sp.t.Fatalf("no span %s with %v; spans: %s", name, want, strings.Join(names, "\n  "))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// childOf waits for the span named name whose parent is parent.
func (sp *spans) childOf(parent tracetest.SpanStub, name string) tracetest.SpanStub {
	sp.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, s := range sp.exp.GetSpans() {
			if s.Name == name && s.Parent.SpanID() == parent.SpanContext.SpanID() && s.Parent.TraceID() == parent.SpanContext.TraceID() {
				return s
			}
		}
		if time.Now().After(deadline) {
			sp.t.Fatalf("no span %s under %s", name, parent.Name)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// noSecretIn fails when an attribute of any span carries one of secrets.
func (sp *spans) noSecretIn(secrets ...string) {
	sp.t.Helper()
	for _, s := range sp.exp.GetSpans() {
		for k, v := range spanAttrs(s) {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(v, secret) {
					sp.t.Errorf("span %s: attribute %s carries a secret", s.Name, k)
				}
			}
		}
	}
}

// One trace, from the IdP's traceparent through the receiver's HTTP span and publish, the
// intake's span of the delivery, to the mirror write and the event log insert that recorded it.
func TestOneTraceFromTheWebhookToTheMirrorWrite(t *testing.T) {
	t.Parallel()
	tp, sp := traced(t)
	s := startStack(t, withTracing(tp))
	const idpTrace, idpSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"

	body := clerkEvent("user.created", 1716883200, clerkUser("user_traced", "Ada", 1716883200000, false))
	h, err := clerk.SignSvix("msg_traced", time.Now(), body, secret)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+idpTrace+"-"+idpSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if status := s.settled("msg_traced"); status != "applied" {
		t.Fatalf("event status %s", status)
	}

	event := map[string]string{"idpsync.source": "clerk-e2e", "idpsync.event_id": "msg_traced"}
	server := sp.find("POST /webhooks/{source}", event)
	publish := sp.childOf(server, receiver.PublishSpanName)
	record := sp.find(intake.RecordSpanName, event)
	write := sp.childOf(record, handlers.MirrorWriteSpanName)
	insert := sp.childOf(record, intake.EventLogSpanName)
	for _, span := range []tracetest.SpanStub{server, publish, record, write, insert} {
		if got := span.SpanContext.TraceID().String(); got != idpTrace {
			t.Errorf("span %s is in trace %s, want the IdP's %s", span.Name, got, idpTrace)
		}
	}
	if server.Parent.SpanID().String() != idpSpan {
		t.Errorf("the receiver's span does not continue the IdP's")
	}
	if record.Parent.SpanID() != publish.SpanContext.SpanID() || !record.Parent.IsRemote() {
		t.Errorf("the intake's span is not the child of the receiver's publish, across the stream")
	}
	a := spanAttrs(record)
	for k, v := range map[string]string{"idpsync.event_type": "user.created", "idpsync.status": "applied", "idpsync.outcome": "recorded"} {
		if a[k] != v {
			t.Errorf("intake span %s = %q, want %q", k, a[k], v)
		}
	}
	if a := spanAttrs(write); a["idpsync.entity"] != "user" || a["idpsync.applied"] != "true" {
		t.Errorf("mirror write span: %v", a)
	}
	if !write.StartTime.Before(write.EndTime) || write.StartTime.Before(record.StartTime) || write.EndTime.After(record.EndTime) {
		t.Errorf("the mirror write (%v–%v) is not within the intake's span (%v–%v)", write.StartTime, write.EndTime, record.StartTime, record.EndTime)
	}
	sp.noSecretIn(secret, h.Get("svix-signature"), "Lovelace")
}

// A Zitadel event names its user without its state: the intake enqueues an apply_event job, and
// the trace goes on into the job, its read of the user at Zitadel and its mirror write.
func TestTheTraceContinuesIntoTheApplyJobAndItsIdPCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const key = "zitadel-target-signing-key"
	z := zitadelfake.New(zitadelfake.Options{Seed: 23, Organizations: 1})
	url := z.Start()
	t.Cleanup(z.Close)
	tp, sp := traced(t)
	s := startStack(t, withTracing(tp), withSources(fmt.Sprintf(`[
  {name: zitadel-e2e, kind: zitadel, webhook: {secrets: [%q]}, api: {base_url: %q, token: %q}, resync: {periodic: false}}]`,
		key, url, z.PAT())))
	z.SetWebhookTarget(fakeidp.WebhookTarget{URL: s.endpoint("zitadel-e2e"), Secret: key})
	u := z.CreateUser(zitadelfake.User{OrgID: z.OrganizationIDs()[0], Username: "grace", FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"})
	if err := z.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	s.quiescent()
	if got := s.scalar(`SELECT first_name FROM users WHERE source = 'zitadel-e2e' AND id = $1`, u.ID); got != "Grace" {
		t.Fatalf("user row: %v", got)
	}

	record := sp.find(intake.RecordSpanName, map[string]string{"idpsync.source": "zitadel-e2e", "idpsync.event_type": "user.created", "idpsync.status": "pending"})
	server := sp.find("POST /webhooks/{source}", map[string]string{"idpsync.event_id": spanAttrs(record)["idpsync.event_id"]})
	job := sp.childOf(record, "river.work/"+handlers.ApplyEventArgs{}.Kind())
	call := sp.childOf(job, "zitadel get_user")
	write := sp.childOf(job, handlers.MirrorWriteSpanName)
	for _, span := range []tracetest.SpanStub{record, job, call, write} {
		if span.SpanContext.TraceID() != server.SpanContext.TraceID() {
			t.Errorf("span %s is in trace %s, not the webhook's %s", span.Name, span.SpanContext.TraceID(), server.SpanContext.TraceID())
		}
	}
	a := spanAttrs(call)
	if call.SpanKind != trace.SpanKindClient || a["idpsync.operation"] != "get_user" || a["idpsync.source"] != "zitadel-e2e" ||
		a["http.response.status_code"] != "200" || a["url.full"] != url+"/v2/users/"+u.ID {
		t.Errorf("IdP call span %s: %v", call.SpanKind, a)
	}
	if a := spanAttrs(write); a["idpsync.entity"] != "user" || a["idpsync.applied"] != "true" {
		t.Errorf("mirror write span: %v", a)
	}
	sp.noSecretIn(z.PAT(), key, "grace@example.com")
}
