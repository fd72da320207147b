package evidence

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMarkdownEscapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a|b", `a\|b`},
		{"line\nbreak\r\tend", "line break  end"},
		{"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"[click](http://x)", `\[click\](http://x)`},
		{"`code` *bold* _it_", "\\`code\\` \\*bold\\* \\_it\\_"},
		{"bell\x07", "bell\uFFFD"},
	} {
		if got := md(tc.in); got != tc.want {
			t.Errorf("md(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactSettings(t *testing.T) {
	got := redactSettings([]string{"search_path=public", "myapp.api_token=t0k", "pgaudit.log=role", "x.password=p", "vault.secret_id=s", "aws.access_key=k"})
	want := []string{"search_path=public", "myapp.api_token=[redacted]", "pgaudit.log=role", "x.password=[redacted]", "vault.secret_id=[redacted]", "aws.access_key=[redacted]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("redactSettings (-want +got):\n%s", diff)
	}
}
