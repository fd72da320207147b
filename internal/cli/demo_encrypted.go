package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/repo"
)

// demoCustomer is what the demo stores for a tenant: the plaintext it must get back, never printed.
type demoCustomer struct {
	name string
	ctx  context.Context // carries a Principal of the tenant
	row  reference.Customer
}

func demoNotes(s string) *string { return &s }

// encryptedChecks write a customer and an invoice per tenant through the repositories and show what the
// database holds. It fails when a customer could not be written: every later check needs both.
func (d *demo) encryptedChecks(ctx context.Context) error {
	acme := &demoCustomer{name: "acme", ctx: d.as(ctx, d.acme, "acme"), row: reference.Customer{
		DisplayName: "Acme buyer", Email: "buyer@acme.example", Phone: "+1 555 0100", Notes: demoNotes("pays by bank transfer")}}
	globex := &demoCustomer{name: "globex", ctx: d.as(ctx, d.globex, "globex"), row: reference.Customer{
		DisplayName: "Globex buyer", Email: "buyer@globex.example", Phone: "+44 20 7946 0000", Notes: demoNotes("net 30")}}

	for _, c := range []*demoCustomer{acme, globex} {
		row := c.row // Insert fills in the id, tenant and version; c.row keeps the plaintext as given
		err := d.customers.Insert(c.ctx, &row)
		if err != nil {
			d.check(fmt.Sprintf("%s inserts its customer through reference.Customers.Insert", c.name), err.Error())
			return errors.New("demo: the remaining checks need a customer of each tenant")
		}
		c.row.ID, c.row.TenantID = row.ID, row.TenantID
		d.check(fmt.Sprintf("%s inserts customer %s %q through reference.Customers.Insert, which encrypts email, phone and notes with %s's key",
			c.name, row.ID, row.DisplayName, c.name), "")
	}
	d.acmeCust, d.globexCust = acme.row.ID.String(), globex.row.ID.String()

	d.storedCiphertext(ctx, acme)

	got, err := d.customers.Get(acme.ctx, acme.row.ID)
	problem := ""
	if err != nil {
		problem = err.Error()
	} else {
		problem = differs(acme.row, got)
	}
	d.check("acme reads its customer back (reference.Customers.Get): email, phone and notes decrypt to what was inserted", problem)

	const lookup = " Buyer@ACME.Example"
	found, err := d.customers.FindByEmail(acme.ctx, lookup)
	switch {
	case err != nil:
		problem = err.Error()
	case found.ID != acme.row.ID:
		problem = fmt.Sprintf("got customer %s, want %s", found.ID, acme.row.ID)
	default:
		problem = ""
	}
	d.check(fmt.Sprintf("acme finds it with reference.Customers.FindByEmail(%q): the address is normalized, then matched on its blind index", lookup), problem)

	var acmeInvoice repo.ID
	issued := time.Now().UTC().Truncate(time.Second)
	for _, inv := range []struct {
		c    *demoCustomer
		id   *repo.ID
		row  reference.Invoice
		show string
	}{
		{acme, &acmeInvoice, reference.Invoice{AmountMinor: 12500, Currency: "EUR", Status: reference.StatusIssued, Memo: demoNotes("March consulting"), IssuedAt: &issued}, "EUR 125.00"},
		{globex, &d.globexInvoice, reference.Invoice{AmountMinor: 9900, Currency: "USD", Status: reference.StatusDraft, Memo: demoNotes("Q1 licences")}, "USD 99.00"},
	} {
		inv.row.CustomerID = inv.c.row.ID
		what := fmt.Sprintf("%s creates an invoice of %s for its customer (reference.Invoices.Insert, memo encrypted)", inv.c.name, inv.show)
		if err := d.invoices.Insert(inv.c.ctx, &inv.row); err != nil {
			d.check(what, err.Error())
			continue
		}
		*inv.id = inv.row.ID
		d.check(fmt.Sprintf("%s creates invoice %s of %s for its customer (reference.Invoices.Insert, memo encrypted)", inv.c.name, inv.row.ID, inv.show), "")
	}

	what := "acme reads its invoice with its customer in one statement (reference.Invoices.GetWithCustomer): memo and email decrypt"
	if acmeInvoice.IsZero() {
		d.check(what, "acme has no invoice: its creation failed above")
		return nil
	}
	iwc, err := d.invoices.GetWithCustomer(acme.ctx, acmeInvoice)
	switch {
	case err != nil:
		problem = err.Error()
	case iwc.Invoice.ID != acmeInvoice || iwc.Customer.ID != acme.row.ID:
		problem = fmt.Sprintf("got invoice %s with customer %s, want invoice %s with customer %s", iwc.Invoice.ID, iwc.Customer.ID, acmeInvoice, acme.row.ID)
	case iwc.Invoice.Memo == nil || *iwc.Invoice.Memo != "March consulting":
		problem = "the memo differs from what was inserted"
	default:
		problem = differs(acme.row, iwc.Customer)
	}
	d.check(what, problem)
	return nil
}

// differs names the encrypted fields of got that differ from want, without their values.
func differs(want, got reference.Customer) string {
	var fields []string
	if got.Email != want.Email {
		fields = append(fields, "email")
	}
	if got.Phone != want.Phone {
		fields = append(fields, "phone")
	}
	if got.Notes == nil || want.Notes == nil || *got.Notes != *want.Notes {
		fields = append(fields, "notes")
	}
	if len(fields) == 0 {
		return ""
	}
	return strings.Join(fields, ", ") + " differ(s) from what was inserted"
}

// storedCiphertext reads c's row as the superuser, whom row-level security does not restrict, as a
// stolen backup or a rogue DBA would, and shows that it holds no plaintext: only the length and the first
// bytes of each ciphertext are printed.
func (d *demo) storedCiphertext(ctx context.Context, c *demoCustomer) {
	what := fmt.Sprintf("%s's customer as stored, read as the superuser (no row-level security): email, phone and notes are ciphertext", c.name)
	cfg, err := pgx.ParseConfig(d.superDSN)
	if err != nil {
		d.check(what, err.Error())
		return
	}
	cfg.Database = d.database
	super, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		d.check(what, describe(err))
		return
	}
	defer super.Close(context.WithoutCancel(ctx))

	var email, bidx, phone, notes []byte
	err = super.QueryRow(ctx, "SELECT email, email_bidx, phone, notes FROM public.customers WHERE tenant_id = $1 AND id = $2",
		c.row.TenantID, c.row.ID).Scan(&email, &bidx, &phone, &notes)
	if err != nil {
		d.check(what, err.Error())
		return
	}
	plain := [][]byte{[]byte(c.row.Email), []byte(strings.ToLower(c.row.Email)), []byte(c.row.Phone), []byte(*c.row.Notes)}
	stored := []struct {
		column string
		value  []byte
		about  string
	}{
		{"email", email, ""},
		{"email_bidx", bidx, "  blind index: a keyed hash of the normalized address"},
		{"phone", phone, ""},
		{"notes", notes, ""},
	}
	var problems []string
	for _, s := range stored {
		switch {
		case len(s.value) == 0:
			problems = append(problems, s.column+" is empty")
		case containsAny(s.value, plain):
			problems = append(problems, s.column+" holds plaintext")
		}
	}
	d.check(what, strings.Join(problems, "; "))
	for _, s := range stored {
		d.s.printf("        %-10s  %3d bytes  %s\n", s.column, len(s.value), hexPrefix(s.value)+s.about)
	}
}

func containsAny(b []byte, subs [][]byte) bool {
	for _, s := range subs {
		if len(s) > 0 && bytes.Contains(b, s) {
			return true
		}
	}
	return false
}

// hexPrefix shows the first bytes of a ciphertext: enough to see it is one, never all of it.
func hexPrefix(b []byte) string {
	const n = 8
	if len(b) <= n {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%x...", b[:n])
}

// repoIsolationChecks try globex's invoice from acme through the repositories: a miss, as for an id that
// does not exist.
func (d *demo) repoIsolationChecks(acme context.Context) {
	for _, c := range []struct {
		method string
		get    func() error
	}{
		{"reference.Invoices.Get", func() error { _, err := d.invoices.Get(acme, d.globexInvoice); return err }},
		{"reference.Invoices.GetWithCustomer", func() error { _, err := d.invoices.GetWithCustomer(acme, d.globexInvoice); return err }},
	} {
		what := fmt.Sprintf("acme reads globex's invoice by its id (%s): repo.ErrNotFound, as for an id that exists nowhere", c.method)
		if d.globexInvoice.IsZero() {
			d.check(what, "globex has no invoice: its creation failed above")
			continue
		}
		problem := ""
		if err := c.get(); !errors.Is(err, repo.ErrNotFound) {
			problem = fmt.Sprintf("got %v, want repo.ErrNotFound", err)
		}
		d.check(what, problem)
	}
}
