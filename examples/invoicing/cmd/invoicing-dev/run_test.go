package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The command starts everything, serves the calls its banner shows, and removes it all on cancel.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	type urls struct{ api, idp, metrics string }
	ready := make(chan urls, 1)
	done := make(chan int, 1)
	go func() {
		done <- serve(ctx, []string{"-addr", "127.0.0.1:0", "-idp-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0"}, &stdout, &stderr,
			func(api, idp, metrics string) { ready <- urls{api, idp, metrics} })
	}()
	var u urls
	select {
	case u = <-ready:
	case code := <-done:
		t.Fatalf("exited %d before serving: %s", code, stderr.String())
	}
	call := func(method, target, token, body string, header ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if strings.Contains(target, "/dev-token") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	_, alice := call("POST", u.idp+"/customers/dev-token", "", form("sub", "alice", "aud", "invoicing", "org_id", "org_acme", "roles[]", "clerk"))
	if code, body := call("POST", u.api+"/v1/customers", alice, `{"display_name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44"}`); code != 201 {
		t.Fatalf("create a customer: got %d %s", code, body)
	}
	if code, body := call("GET", u.api+"/v1/customers/search?email=ada@example.com", alice, ""); code != 200 || !strings.Contains(body, "Ada@Example.com") {
		t.Errorf("search: got %d %s", code, body)
	}
	_, sam := call("POST", u.idp+"/staff/dev-token", "", form("sub", "sam", "aud", "support-console", "roles[]", "support",
		"amr[]", "pwd", "amr[]", "mfa", "auth_time", "now"))
	acme := between(stdout.String(), "ACME=", " ")
	if code, body := call("GET", u.api+"/admin/tenants/"+acme+"/v1/customers", sam, "", "X-Elevation-Reason", "ticket 4711"); code != 200 || !strings.Contains(body, "Ada") {
		t.Errorf("staff elevated into acme (%s): got %d %s", acme, code, body)
	}
	// The metrics listener is not the API's; it counts what the calls did, and names no tenant.
	if code, _ := call("GET", u.api+"/metrics", "", ""); code == 200 {
		t.Error("the API serves /metrics")
	}
	_, metrics := call("GET", u.metrics, "", "")
	for _, want := range []string{"tenantseal_db_statements_total{", `tenantseal_keys_unwraps_total{`, `tenantseal_event_kind="elevation"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("the metrics lack %s:\n%s", want, metrics)
		}
	}
	if strings.Contains(metrics, acme) {
		t.Error("the metrics name a tenant")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"export API=" + u.api, "ALICE=$(curl", "stopping", "elevation ", `reason "ticket 4711"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
}

func between(s, start, end string) string {
	_, rest, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(rest, end)
	return v
}
