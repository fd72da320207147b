package adopt_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/adopt"
)

func mustWriteFiles(t testing.TB, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("-- "+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNextVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"empty", nil, "0001"},
		{"padded", []string{"0001_a.up.sql", "0001_a.down.sql", "0020_b.up.sql", "0020_b.down.sql", "0003_c.up.sql"}, "0021"},
		{"timestamps", []string{"20240101120000_init.up.sql", "20240102120000_more.down.sql"}, "20240102120001"},
		{"unpadded", []string{"1_init.up.sql", "9_x.up.sql"}, "10"},
		{"other files ignored", []string{"README.md", "0007_x.sql", "x_0009.up.sql", "0002_y.up.sql"}, "0003"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mustWriteFiles(t, dir, tc.files...)
			got, err := adopt.NextVersion(dir)
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if got, err := adopt.NextVersion(filepath.Join(t.TempDir(), "missing")); err != nil || got != "0001" {
		t.Errorf("missing directory: got %q, %v; want 0001", got, err)
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	p := &adopt.Plan{Schemas: []string{"shop"}, AppRole: "x_app", Changes: []adopt.Change{
		{Kind: adopt.KindSetNotNull, Table: "shop.a", Reason: "first", Up: []string{"UP 1"}, Down: []string{"DOWN 1"}},
		{Kind: adopt.KindProtectTable, Table: "shop.b", Reason: "second\nline", Up: []string{"UP 2a", "UP 2b"}, Down: []string{"DOWN 2"}},
	}, Notes: []string{"shop.c: left"}}
	dir := filepath.Join(t.TempDir(), "migrations")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWriteFiles(t, dir, "0041_app.up.sql", "0041_app.down.sql")
	f, err := p.Write(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	want := adopt.Files{Version: "0042", Up: filepath.Join(dir, "0042_tenantseal_adopt.up.sql"), Down: filepath.Join(dir, "0042_tenantseal_adopt.down.sql")}
	if f != want {
		t.Errorf("got %+v, want %+v", f, want)
	}
	up, _ := os.ReadFile(f.Up)
	down, _ := os.ReadFile(f.Down)
	for _, w := range []string{"\n-- shop.a: first\nUP 1;\n", "\n-- shop.b: second line\nUP 2a;\nUP 2b;\n", "-- left as is: shop.c: left\n"} {
		if !strings.Contains(string(up), w) {
			t.Errorf("up file lacks %q:\n%s", w, up)
		}
	}
	// Undone in reverse.
	if i, j := strings.Index(string(down), "DOWN 2;"), strings.Index(string(down), "DOWN 1;"); i < 0 || j < 0 || i > j {
		t.Errorf("down file does not undo in reverse order:\n%s", down)
	}

	// The next one numbers after it, and a name with a path is refused.
	if f2, err := p.Write(dir, "again"); err != nil || f2.Version != "0043" {
		t.Errorf("second write: got %+v, %v; want version 0043", f2, err)
	}
	for _, bad := range []string{"../x", "a/b", " x"} {
		if _, err := p.Write(dir, bad); err == nil {
			t.Errorf("Write(%q): got no error", bad)
		}
	}
	// A plan without changes writes nothing.
	empty := t.TempDir()
	if _, err := (&adopt.Plan{}).Write(empty, ""); err == nil {
		t.Error("empty plan: got no error")
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("empty plan wrote %v", entries)
	}
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	p := &adopt.Plan{Schemas: []string{"shop"}, Changes: []adopt.Change{
		{Kind: adopt.KindGrant, Table: "shop.plans", Reason: "global", Up: []string{`GRANT SELECT ON "shop"."plans" TO "a"`}, Down: []string{"x"}},
	}}
	var b strings.Builder
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "1 change to schema shop:\n\n1. grant shop.plans: global\n\tGRANT SELECT ON \"shop\".\"plans\" TO \"a\";\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
