package db_test

import (
	"net/url"
	"testing"
)

func mustParseURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustUser(name string) *url.Userinfo { return url.UserPassword(name, "pw") }
