package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/rekey"
)

// keysStatusJSON is `keys status --format json`, schema tenantseal/keys-status/v1.
type keysStatusJSON struct {
	Schema  string           `json:"schema"`
	Tenants []tenantKeysJSON `json:"tenants"`
}

type tenantKeysJSON struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	ShreddedAt   *time.Time   `json:"shredded_at"`
	KEK          kekJSON      `json:"kek"`
	PrimarySince *time.Time   `json:"primary_since"`
	RetireAfter  *time.Time   `json:"retire_after"`
	Quarantined  int64        `json:"quarantined"`
	Keysets      []keysetJSON `json:"keysets"`
}

type kekJSON struct {
	ID  string `json:"id"`
	Own bool   `json:"own"`
	URI string `json:"uri"`
}

type keysetJSON struct {
	Purpose string    `json:"purpose"`
	Version int64     `json:"version"`
	Keys    []keyJSON `json:"keys"`
}

type keyJSON struct {
	ID          uint32     `json:"id"`
	Status      string     `json:"status"`
	CreatedAt   *time.Time `json:"created_at"`
	DisabledAt  *time.Time `json:"disabled_at"`
	DestroyedAt *time.Time `json:"destroyed_at"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// status runs `keys status`: nothing secret, and no KEK needed.
func (r *keysRun) status(ctx context.Context) error {
	c, err := ownerConnect(ctx, r.conn, "keys status")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var ids []tenantseal.TenantID
	if !r.tenant.IsZero() {
		if err := requireTenant(ctx, c, "keys status", r.tenant); err != nil {
			return err
		}
		ids = append(ids, r.tenant)
	}
	st, err := pgstore.Status(ctx, c, ids...)
	if err != nil {
		return fmt.Errorf("keys status: %w", ownerError(err))
	}
	if r.out.json() {
		doc := keysStatusJSON{Schema: "tenantseal/keys-status/v1", Tenants: []tenantKeysJSON{}}
		for _, t := range st {
			tj := tenantKeysJSON{ID: t.Tenant.String(), Name: t.Name, ShreddedAt: t.ShreddedAt, KEK: kekJSON{ID: t.KEKID, Own: t.OwnKEK, URI: t.KEKURI},
				PrimarySince: timeOrNil(t.PrimarySince), RetireAfter: timeOrNil(t.RetireAfter), Quarantined: t.Quarantined, Keysets: []keysetJSON{}}
			for _, ks := range t.Keysets {
				kj := keysetJSON{Purpose: ks.Purpose, Version: ks.Version, Keys: []keyJSON{}}
				for _, k := range ks.Keys {
					kj.Keys = append(kj.Keys, keyJSON{ID: k.ID, Status: k.Status, CreatedAt: k.CreatedAt, DisabledAt: k.DisabledAt, DestroyedAt: k.DestroyedAt})
				}
				tj.Keysets = append(tj.Keysets, kj)
			}
			doc.Tenants = append(doc.Tenants, tj)
		}
		return writeJSON(r.s, doc)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(r.s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tNAME\tKEK\tKEYSET\tKEYS\tRETIRE\tQUARANTINED")
	for _, t := range st {
		kek := t.KEKID + " (shared)"
		if t.OwnKEK {
			kek = t.KEKID + " (own: " + t.KEKURI + ")"
		}
		if len(t.Keysets) == 0 {
			what := "none"
			if t.ShreddedAt != nil {
				what = "shredded " + t.ShreddedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\t-\t%d\n", t.Tenant, printable(t.Name), what, t.Quarantined)
			continue
		}
		retire := "nothing to retire"
		for _, ks := range t.Keysets {
			for _, k := range ks.Keys {
				if k.Status == "enabled" || k.Status == "unknown" {
					retire = "allowed"
				}
			}
		}
		if retire == "allowed" && now.Before(t.RetireAfter) {
			retire = "after " + t.RetireAfter.Format(time.RFC3339)
		}
		for _, ks := range t.Keysets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s v%d\t%s\t%s\t%d\n", t.Tenant, printable(t.Name), kek, ks.Purpose, ks.Version, keyList(ks.Keys, now), retire, t.Quarantined)
		}
	}
	return tw.Flush()
}

// keyList renders a keyset's keys: "123 primary 2d, 456 disabled 40d".
func keyList(ks []pgstore.KeyState, now time.Time) string {
	var parts []string
	for _, k := range ks {
		age := "age unknown"
		if k.CreatedAt != nil {
			age = roundAge(now.Sub(*k.CreatedAt))
		}
		parts = append(parts, fmt.Sprintf("%d %s %s", k.ID, k.Status, age))
	}
	return strings.Join(parts, ", ")
}

// roundAge renders a key's age in the largest unit that fits.
func roundAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// quarantineJSON is `keys quarantine --format json`, schema tenantseal/quarantine/v1.
type quarantineJSON struct {
	Schema string           `json:"schema"`
	Tenant string           `json:"tenant"`
	Values []quarantinedVal `json:"values"`
}

type quarantinedVal struct {
	Table   string    `json:"table"`
	Column  string    `json:"column"`
	Row     string    `json:"row"`
	KeyID   uint32    `json:"key_id"`
	Reason  string    `json:"reason"`
	FoundAt time.Time `json:"found_at"`
}

// quarantine runs `keys quarantine --tenant T [--release]`, as the app role, whose row-level security
// shows that tenant's list alone. Releasing is recorded.
func (r *keysRun) quarantine(ctx context.Context) error {
	app, err := r.app.resolve()
	if err != nil {
		return err
	}
	c, err := ownerConnect(ctx, r.conn, "keys quarantine")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := requireTenant(ctx, c, "keys quarantine", r.tenant); err != nil {
		return err
	}
	pool, err := r.app.open(ctx, c, app)
	if err != nil {
		return err
	}
	defer pool.Close()
	tctx := asTenant(ctx, r.tenant, "quarantine")
	if r.release {
		log, err := openAuditLog(ctx, r.s, r.conn, "keys quarantine --release")
		if err != nil {
			return err
		}
		n, err := rekey.Release(tctx, pool)
		if err == nil {
			log.w.Record(asOperator(ctx), tenantseal.Event{Kind: tenantseal.EventQuarantine, TargetTenant: r.tenant, Table: "tenantseal.quarantine",
				Operation: "release quarantine", Detail: fmt.Sprintf("released %d quarantined values for re-examination", n)})
			r.s.printf("tenant %s: released %d quarantined values: the next 'tenantseal keys reencrypt --tenant %s' examines them again\n", r.tenant, n, r.tenant)
		}
		return log.close(ctx, err)
	}
	list, err := rekey.Quarantined(tctx, pool)
	if err != nil {
		return fmt.Errorf("keys quarantine: %w", err)
	}
	if r.out.json() {
		doc := quarantineJSON{Schema: "tenantseal/quarantine/v1", Tenant: r.tenant.String(), Values: []quarantinedVal{}}
		for _, e := range list {
			doc.Values = append(doc.Values, quarantinedVal{Table: e.Table, Column: e.Column, Row: e.Row, KeyID: e.KeyID, Reason: e.Reason, FoundAt: e.FoundAt})
		}
		return writeJSON(r.s, doc)
	}
	if len(list) == 0 {
		r.s.printf("tenant %s: nothing quarantined\n", r.tenant)
		return nil
	}
	tw := tabwriter.NewWriter(r.s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tCOLUMN\tROW\tKEY\tREASON\tFOUND_AT")
	for _, e := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", e.Table, e.Column, e.Row, e.KeyID, e.Reason, e.FoundAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// settings runs `keys settings`: prints the key cache bounds, or changes them (recorded).
func (r *keysRun) settings(ctx context.Context, f *flags) error {
	var change pgstore.KeySettingsChange
	if f.set("max-cache-ttl") {
		if r.maxCacheTTL <= 0 {
			return usageErrorf("keys settings: --max-cache-ttl must be positive, got %v", r.maxCacheTTL)
		}
		change.MaxCacheTTL = &r.maxCacheTTL
	}
	if f.set("write-grace") {
		if r.writeGrace < 0 {
			return usageErrorf("keys settings: --write-grace must not be negative, got %v", r.writeGrace)
		}
		change.WriteGrace = &r.writeGrace
	}
	var st pgstore.KeySettings
	if change.MaxCacheTTL == nil && change.WriteGrace == nil {
		c, err := ownerConnect(ctx, r.conn, "keys settings")
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		if st, err = pgstore.ReadKeySettings(ctx, c); err != nil {
			return fmt.Errorf("keys settings: %w", ownerError(err))
		}
	} else {
		c, log, err := ownerWithLog(ctx, r.s, r.conn, "keys settings")
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		st, err = pgstore.NewAdmin(c, nil).WithRecorder(log.w).SetKeySettings(asOperator(ctx), change)
		if err != nil {
			return log.close(ctx, fmt.Errorf("keys settings: %w", ownerError(err)))
		}
		if err := log.close(ctx, nil); err != nil {
			return err
		}
	}
	r.s.printf("max_cache_ttl %v, write_grace %v: keys retire waits %v after a rotation\n", st.MaxCacheTTL, st.WriteGrace, st.RetireWait)
	if st.RetireWait > st.MaxCacheTTL+st.WriteGrace {
		r.s.info("the wait is longer than max_cache_ttl plus write_grace until processes that loaded keysets under the earlier, longer bound have dropped them\n")
	}
	return nil
}
