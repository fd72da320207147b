package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
key (SQLSTATE TS401, db.ErrInvalidContext), so an instance that was not restarted fails every query.`

func runContextKey(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "context-key", "[flags] rotate", contextKeyAbout)
	conn := f.ownerConn()
	overlap := f.Duration("overlap", 10*time.Minute, "how long the current keys stay accepted (at least 1s)")
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
	case *overlap < time.Second:
		return usageErrorf("context-key rotate: --overlap must be at least 1s, got %v", *overlap)
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
	key, err := db.RotateContextKey(ctx, c, *overlap)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			switch pe.Code {
			case "42P01", "3F000":
				return errors.New("context-key rotate: the database has no tenantseal schema: run 'tenantseal migrate up' first")
			case "42501":
				return errors.New("context-key rotate: permission denied: connect as the owner role (TENANTSEAL_OWNER_DSN)")
			}
		}
		return err
	}
	line := formatContextKey(key)
	s.secret(fmt.Sprintf("%x", key.Secret))

	// The keys that stay accepted until the overlap ends: every one but the new.
	var until time.Time
	var retiring []string
	accepted, err := db.ContextKeys(ctx, c)
	for _, k := range accepted {
		if k.ID != key.ID {
			retiring = append(retiring, k.ID)
			until = k.NotAfter
		}
	}

	report := s.stdout
	if *print {
		report = s.stderr
		s.printf("%s=%s\n", keyContextKey, line)
	} else {
		file.set(keyContextKey, line)
		if cerr := pending.commit(file.bytes()); cerr != nil {
			return fmt.Errorf("new context key %s is installed but not saved: %w (run rotate again)", key.ID, cerr)
		}
	}
	fmt.Fprintf(report, "new context key: %s\n", key.ID)
	if !*print {
		fmt.Fprintf(report, "wrote %s=%s:... to %s\n", keyContextKey, key.ID, conn.secrets)
	}
	if err != nil {
		return fmt.Errorf("new context key %s installed; listing the old keys failed: %w", key.ID, err)
	}
	if len(retiring) == 0 {
		fmt.Fprintln(report, "no earlier key was accepted: nothing to retire")
		return nil
	}
	fmt.Fprintf(report, "old keys %v are accepted until %s (in %v): restart every app instance with the new key before then; tokens signed with a retired key are refused (SQLSTATE TS401)\n",
		retiring, until.UTC().Format(time.RFC3339), *overlap)
	return nil
}
