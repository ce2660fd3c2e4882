package kubeboot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// API is an authenticated client of the cluster's API server.
type API struct {
	// URL is the API server, https://127.0.0.1:6443.
	URL string
	// Client authenticates as an administrator.
	Client *http.Client

	resources map[string]map[string]apiResource // group/version → kind → resource
}

type apiResource struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Namespaced bool   `json:"namespaced"`
}

// FieldManager names Cairn as the owner of the fields it applies.
const FieldManager = "cairn"

// Do sends a request and decodes a JSON answer into out (when not nil).
// A non-2xx answer is an error carrying the API server's message.
func (a *API) Do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &st) == nil && st.Message != "" {
			return &StatusError{Code: resp.StatusCode, Message: st.Message}
		}
		return &StatusError{Code: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// StatusError is an API server's refusal.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// groupPath is the URL path of an API group version: /api/v1 or /apis/G/V.
func groupPath(apiVersion string) string {
	if !strings.Contains(apiVersion, "/") {
		return "/api/" + apiVersion
	}
	return "/apis/" + apiVersion
}

// resource finds the resource serving kind in apiVersion through discovery
// (cached; asked again when a kind is unknown, e.g. a CRD just created).
func (a *API) resource(ctx context.Context, apiVersion, kind string) (apiResource, error) {
	if r, ok := a.resources[apiVersion][kind]; ok {
		return r, nil
	}
	var list struct {
		Resources []apiResource `json:"resources"`
	}
	if err := a.Do(ctx, http.MethodGet, groupPath(apiVersion), "", nil, &list); err != nil {
		return apiResource{}, fmt.Errorf("API %s is not served (%v)", apiVersion, err)
	}
	kinds := map[string]apiResource{}
	for _, r := range list.Resources {
		if !strings.Contains(r.Name, "/") { // not a subresource
			kinds[r.Kind] = r
		}
	}
	if a.resources == nil {
		a.resources = map[string]map[string]apiResource{}
	}
	a.resources[apiVersion] = kinds
	r, ok := kinds[kind]
	if !ok {
		return apiResource{}, fmt.Errorf("kind %s is not served by %s", kind, apiVersion)
	}
	return r, nil
}

// Apply creates or updates obj with server-side apply, Cairn owning the
// fields it sets (conflicts are forced: the manifest is the truth).
func (a *API) Apply(ctx context.Context, obj Object) error {
	r, err := a.resource(ctx, obj.APIVersion, obj.Kind)
	if err != nil {
		return err
	}
	path := groupPath(obj.APIVersion)
	if r.Namespaced {
		ns := obj.Namespace
		if ns == "" {
			ns = "default"
		}
		path += "/namespaces/" + url.PathEscape(ns)
	}
	path += "/" + r.Name + "/" + url.PathEscape(obj.Name) + "?fieldManager=" + FieldManager + "&force=true"
	body, err := json.Marshal(obj.Doc)
	if err != nil {
		return err
	}
	return a.Do(ctx, http.MethodPatch, path, "application/apply-patch+yaml", body, nil)
}

// ApplyAll applies objects in order; those that fail (a namespace or a CRD
// defined further on, not yet there) get a second pass after the rest. It
// returns one error per object still failing.
func (a *API) ApplyAll(ctx context.Context, objs []Object) []error {
	var failed []Object
	for _, o := range objs {
		if err := a.Apply(ctx, o); err != nil {
			failed = append(failed, o)
		}
	}
	var errs []error
	for _, o := range failed {
		a.resources = nil // a CRD may have been created meanwhile
		if err := a.Apply(ctx, o); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %w", o.Line, o, err))
		}
	}
	return errs
}
