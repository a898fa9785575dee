package clerkfake

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"

	"github.com/idpsync/idpsync/internal/fakeidp"
)

// Clerk keeps an instance's webhook endpoints in a Svix app. Its Backend API (bapi 2025-11-10)
// has three calls for it, none with a request body:
//
//   - POST /webhooks/svix creates the app and answers {"svix_url"} (SvixURL), a dashboard login
//     link;
//   - POST /webhooks/svix_url makes a new link ({"svix_url"});
//   - DELETE /webhooks/svix deletes the app (204), and with it every endpoint.
//
// The spec documents only 400 (ClerkErrors) as their error. What Clerk answers for an app that
// exists already (create) or does not exist (link, delete) is not documented; the fake answers
// 400 with the codes svix_app_exists and svix_app_missing, which are its own.
//
// Endpoints are added in Svix's dashboard, which the fake stands for with AddSvixEndpoint.

// SvixApp reports whether the instance has a Svix app.
func (f *Fake) SvixApp() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.svixApp
}

// SvixLinks returns the dashboard links the fake made, oldest first.
func (f *Fake) SvixLinks() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.svixLinks)
}

// SvixEndpoints returns the URLs of the endpoints added with AddSvixEndpoint.
func (f *Fake) SvixEndpoints() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.svixEndpoints)
}

// AddSvixEndpoint does what an operator does in Svix's dashboard: it adds an endpoint for url to
// the instance's Svix app and returns its signing secret (whsec_…). The fake's webhooks go to it
// from then on, signed with that secret. It fails when the instance has no Svix app.
func (f *Fake) AddSvixEndpoint(url string) (string, error) {
	f.mu.Lock()
	if !f.svixApp {
		f.mu.Unlock()
		return "", errors.New("clerk fake: the instance has no Svix app")
	}
	f.svixEndpoints = append(f.svixEndpoints, url)
	f.mu.Unlock()
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	f.SetWebhookTarget(fakeidp.WebhookTarget{URL: url, Secret: secret})
	return secret, nil
}

// svixLinkLocked makes a dashboard login link, as Svix's app portal links look.
func (f *Fake) svixLinkLocked() string {
	token := make([]byte, 32)
	_, _ = rand.Read(token)
	link := "https://app.svix.com/login#key=" + base64.RawURLEncoding.EncodeToString(token)
	f.svixLinks = append(f.svixLinks, link)
	return link
}

func (f *Fake) createSvixApp(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	if f.svixApp {
		f.mu.Unlock()
		f.fail(w, http.StatusBadRequest, "svix_app_exists", "A Svix app already exists for this instance.", "")
		return
	}
	f.svixApp = true
	link := f.svixLinkLocked()
	f.mu.Unlock()
	f.RecordMutation("svix_app.create", "", nil)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"svix_url": link})
}

func (f *Fake) deleteSvixApp(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	if !f.svixApp {
		f.mu.Unlock()
		f.fail(w, http.StatusBadRequest, "svix_app_missing", "There is no Svix app for this instance.", "")
		return
	}
	f.svixApp, f.svixEndpoints = false, nil
	f.mu.Unlock()
	f.SetWebhookTarget(fakeidp.WebhookTarget{})
	f.RecordMutation("svix_app.delete", "", nil)
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) svixURL(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	if !f.svixApp {
		f.mu.Unlock()
		f.fail(w, http.StatusBadRequest, "svix_app_missing", "There is no Svix app for this instance.", "")
		return
	}
	link := f.svixLinkLocked()
	f.mu.Unlock()
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"svix_url": link})
}
