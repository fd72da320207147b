package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
)

var contextKeyCommand = command{
	name:    "context-key",
	summary: "rotate the key that signs tenant context tokens",
	run:     runContextKey,
}

const contextKeyAbout = `
Subcommands:

	rotate   install a new signing key as the owner, retire the current ones after --overlap, and write
	         the new key to TENANTSEAL_CONTEXT_KEY in the secrets file (other lines are kept)

Running app instances keep signing with the old key: restart every one of them with the new
TENANTSEAL_CONTEXT_KEY within the overlap. After it, the database refuses tokens signed with a retired
key (SQLSTATE TS401, db.ErrInvalidContext), so an instance that was not restarted fails every query.
--overlap 0 retires the current keys at once: every token signed with them, captured or not, is
refused from then on (it ends the replay window), and so is every instance not yet restarted.

The rotation is recorded in the audit log with the operator: it needs the audit writer's connection
string ($TENANTSEAL_AUDIT_WRITER_DSN, else the secrets file).`

func runContextKey(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "context-key", "[flags] rotate", contextKeyAbout)
	conn := f.ownerConn()
	overlap := f.Duration("overlap", 10*time.Minute, "how long the current keys stay accepted (0: not at all)")
	f.output()
	print := f.Bool("print", false, "print the new TENANTSEAL_CONTEXT_KEY line to stdout instead of writing the secrets file")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usageErrorf("context-key: missing subcommand: rotate (see 'tenantseal context-key -h')")
	case pos[0] != "rotate":
		return usageErrorf("context-key: unknown subcommand %q: want rotate", pos[0])
	case len(pos) > 1:
		return usageErrorf("context-key rotate: unexpected argument %q", pos[1])
	case *overlap < 0:
		return usageErrorf("context-key rotate: --overlap must not be negative, got %v", *overlap)
	}

	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	var (
		file    *secretsFile
		pending *pendingWrite
	)
	if !*print {
		file, err = readSecrets(conn.secrets)
		switch {
		case errors.Is(err, os.ErrNotExist):
			file = &secretsFile{lines: []string{secretsHeader}}
		case err != nil:
			return err
		}
		// Before the key exists: a key that cannot be saved would be lost.
		if pending, err = beginWrite(conn.secrets); err != nil {
			return err
		}
		defer pending.abort()
	}

	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := checkOwner(ctx, c, "context-key rotate"); err != nil {
		return err
	}
	log, err := openAuditLog(ctx, s, conn, "context-key rotate")
	if err != nil {
		return err
	}
	// db.RotateContextKey keeps the current keys on a zero overlap (what bootstrap's first key wants):
	// the smallest positive one retires them as of this transaction.
	retire := *overlap
	if retire == 0 {
		retire = time.Nanosecond
	}
	before, beforeErr := db.ContextKeys(ctx, c)
	key, err := db.RotateContextKey(ctx, c, retire)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			switch pe.Code {
			case "42P01", "3F000":
				return log.close(ctx, errors.New("context-key rotate: the database has no tenantseal schema: run 'tenantseal migrate up' first"))
			case "42501":
				return log.close(ctx, errors.New("context-key rotate: permission denied: connect as the owner role (TENANTSEAL_OWNER_DSN)"))
			}
		}
		return log.close(ctx, err)
	}
	line := formatContextKey(key)
	s.secret(fmt.Sprintf("%x", key.Secret))

	// The keys accepted before, which the rotation retires, and when the last of them goes.
	var until time.Time
	var retiring []string
	for _, k := range before {
		retiring = append(retiring, k.ID)
	}
	accepted, err := db.ContextKeys(ctx, c)
	for _, k := range accepted {
		if k.ID != key.ID {
			until = k.NotAfter
		}
	}
	if err == nil {
		err = beforeErr
	}

	var role string
	_ = c.QueryRow(ctx, "SELECT current_user").Scan(&role)
	when := fmt.Sprintf("after an overlap of %v", *overlap)
	if *overlap == 0 {
		when = "at once"
	}
	log.w.Record(asOperator(ctx), tenantseal.Event{Kind: tenantseal.EventContextKeyRotate, Table: "tenantseal.context_keys", Operation: "rotate",
		Detail: fmt.Sprintf("installed context key %s, retiring %v %s, as database role %s", key.ID, retiring, when, role)})

	report := s.stdout
	if *print {
		report = s.stderr
		s.printf("%s=%s\n", keyContextKey, line)
	} else {
		file.set(keyContextKey, line)
		if cerr := pending.commit(file.bytes()); cerr != nil {
			return log.close(ctx, fmt.Errorf("new context key %s is installed but not saved: %w (run rotate again)", key.ID, cerr))
		}
	}
	fmt.Fprintf(report, "new context key: %s\n", key.ID)
	if !*print {
		fmt.Fprintf(report, "wrote %s=%s:... to %s\n", keyContextKey, key.ID, conn.secrets)
	} else if sf, serr := readSecrets(conn.secrets); serr == nil && sf.get(keyContextKey) != "" {
		fmt.Fprintf(s.stderr, "tenantseal: warning: %s still holds the previous %s, which the database %s: replace that line with the one printed, or whatever reads the file signs with a retired key\n",
			conn.secrets, keyContextKey, map[bool]string{true: "refuses already", false: "refuses once the overlap ends"}[*overlap == 0])
	}
	if err != nil {
		return log.close(ctx, fmt.Errorf("new context key %s installed; listing the old keys failed: %w", key.ID, err))
	}
	switch {
	case len(retiring) == 0:
		fmt.Fprintln(report, "no earlier key was accepted: nothing to retire")
	case *overlap == 0:
		fmt.Fprintf(report, "old keys %v are retired: tokens signed with them are refused from now on (SQLSTATE TS401), and so is every app instance not yet restarted with the new key\n", retiring)
	default:
		fmt.Fprintf(report, "old keys %v are accepted until %s (in %v): restart every app instance with the new key before then; tokens signed with a retired key are refused (SQLSTATE TS401)\n",
			retiring, until.UTC().Format(time.RFC3339), *overlap)
	}
	return log.close(ctx, nil)
}
