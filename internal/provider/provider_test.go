package provider_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
	_ "github.com/idpsync/idpsync/internal/provider/all"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	if got, want := provider.Kinds(), []events.Kind{"authpi", "clerk", "zeroid", "zitadel"}; !slices.Equal(got, want) {
		t.Fatalf("Kinds() = %v, want %v", got, want)
	}
	for _, p := range provider.All() {
		if p.Name == "" || (p.Webhook == nil && p.API == nil) {
			t.Errorf("%s: a provider has a name and does something: %+v", p.Kind, p)
		}
		if p.Webhook != nil && p.Webhook.ReadsEntities && (p.API == nil || len(p.API.Resync) == 0) {
			t.Errorf("%s reads the entities its events name, so it needs an API that reads them", p.Kind)
		}
	}
	if _, err := provider.Parse("okta", "id", []byte(`{}`)); !errors.Is(err, provider.ErrNoParser) {
		t.Fatalf("Parse of an unknown kind: err = %v", err)
	}
	if _, err := provider.Parse("zeroid", "id", []byte(`{}`)); !errors.Is(err, provider.ErrNoParser) {
		t.Fatalf("Parse of a kind without webhooks: err = %v", err)
	}
}

func TestRegisterRefusesDuplicatesAndIncompleteProviders(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]*provider.Provider{
		"duplicate":         {Kind: "clerk", Name: "Clerk again"},
		"no kind":           {Name: "Nameless"},
		"webhook parsers":   {Kind: "x-webhook", Webhook: &provider.Webhook{}},
		"api without funcs": {Kind: "x-api", API: &provider.API{}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			provider.Register(p)
		}()
	}
}
