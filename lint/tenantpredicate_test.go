package lint

import (
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
)

// The body heuristics on their own; the fixtures run them on real catalogs.

func TestTenantPredicate(t *testing.T) {
	t.Parallel()
	c := &catalog{tenantFuncs: map[uint32]bool{}, funcByOID: map[uint32]*function{}}
	deals := &table{name: "public.deals", tenantCol: "org_id", tenantAttnum: 1, columns: []string{"org_id"}, attnums: []int16{1}}
	for _, tc := range []struct {
		name, body string
		args       []string
		trigger    bool
		want       bool
		unverified string
	}{
		{name: "key cast", body: "select * from deals where org_id = tenantseal.current_tenant_key()::bigint", want: true},
		{name: "sub-select", body: "select * from deals where org_id = (select tenantseal.current_tenant_key()::bigint)", want: true},
		{name: "reversed, qualified column", body: "select * from deals d where tenantseal.current_tenant() = d.org_id", want: true},
		{name: "in", body: "select * from deals where org_id in (select tenantseal.current_tenant_key()::bigint)", want: true},
		{name: "declared variable", body: "declare me bigint := tenantseal.current_tenant_key()::bigint; begin return (select sum(x) from deals where org_id = me); end", want: true},
		{name: "select into", body: "begin select tenantseal.current_tenant_key()::bigint into me; delete from deals where org_id = me; end", want: true},
		{name: "verifier called, not compared", body: "begin if tenantseal.current_tenant() is null then return null; end if; return (select sum(x) from deals); end"},
		{name: "not equal", body: "select * from deals where org_id <> tenantseal.current_tenant()"},
		{name: "other column", body: "select * from deals where org_id_old = tenantseal.current_tenant()"},
		{name: "argument", body: "select * from deals where org_id = p_org", args: []string{"p_org"}, unverified: "p_org"},
		{name: "argument checked", body: "begin if p_org is distinct from tenantseal.current_tenant_key()::bigint then raise exception 'no'; end if; return query select * from deals where org_id = p_org; end",
			args: []string{"p_org"}, want: true},
		{name: "positional argument checked", body: "begin if $1 <> tenantseal.current_tenant_key()::bigint then raise exception 'no'; end if; return query select * from deals where org_id = $1; end",
			args: []string{""}, want: true},
		{name: "positional argument", body: "select * from deals where org_id = $1", args: []string{""}},
		{name: "trigger row", body: "begin update deals set n = n + 1 where org_id = new.org_id; return new; end", trigger: true, want: true},
		{name: "row outside a trigger", body: "update deals set n = n + 1 where org_id = new.org_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &function{src: tc.body, args: tc.args, trigger: tc.trigger}
			got, unverified := c.tenantPredicate(f, deals)
			if got != tc.want || unverified != tc.unverified {
				t.Errorf("got %v, %q, want %v, %q", got, unverified, tc.want, tc.unverified)
			}
		})
	}
}

func TestOnlyInserts(t *testing.T) {
	t.Parallel()
	tenants := &table{schema: "tenantseal", relname: "tenants"}
	for _, tc := range []struct {
		body string
		want bool
	}{
		{"begin insert into tenantseal.tenants (key) values (k) on conflict (key) do nothing; return null; end", true},
		{"insert into tenants (key) values (new.id)", true},
		{"insert into tenantseal.tenants (key) values (k) on conflict (key) do update set name = excluded.name", false},
		{"insert into tenantseal.tenants select * from tenantseal.tenants", false},
		{"update tenantseal.tenants set name = 'x'", false},
		{"select 1", false},
	} {
		if got := onlyInserts(tc.body, tenants); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.body, got, tc.want)
		}
	}
}

func TestSettingNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"SELECT nullif(current_setting('app.tenant_id', true), '')::uuid", []string{"app.tenant_id"}},
		{"SELECT current_setting ( 'Request.JWT.Claims' )::json", []string{"request.jwt.claims"}},
		{"SELECT current_setting(name) FROM x", []string{dynamicSetting}},
		{"SELECT setting FROM pg_catalog.pg_settings WHERE name = 'app.t'", []string{dynamicSetting}},
		{"SELECT current_setting('a.b'), pg_catalog.current_setting('a.b')", []string{"a.b"}},
		{"SELECT tenantseal.current_tenant()", nil},
	} {
		if diff := gocmp.Diff(tc.want, settingNames(tc.src)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.src, diff)
		}
	}
}

func TestWrittenTables(t *testing.T) {
	t.Parallel()
	c := &catalog{tables: []*table{
		{name: "public.notes", schema: "public", relname: "notes"},
		{name: "public.history", schema: "public", relname: "history"},
		{name: "audit.log", schema: "audit", relname: "log"},
	}}
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"INSERT INTO public.history (id) VALUES (NEW.id)", []string{"public.history"}},
		{"UPDATE audit.log AS l SET n = n + 1 WHERE l.id = 1", []string{"audit.log"}},
		{"UPDATE ONLY history SET n = 1", []string{"public.history"}},
		{"MERGE INTO history h USING notes n ON h.id = n.id WHEN MATCHED THEN UPDATE SET n = 1", []string{"public.history"}},
		{"SELECT * FROM notes FOR UPDATE; INSERT INTO notes VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 1", []string{"public.notes"}},
		{"SELECT 1 FROM notes", nil},
	} {
		var got []string
		for _, t := range c.writtenTables(tc.src) {
			got = append(got, t.name)
		}
		if diff := gocmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.src, diff)
		}
	}
}
