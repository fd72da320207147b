package evidence

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TLS is tls.json: how the server offers TLS, and whether the export's own sessions use it.
type TLS struct {
	Schema string `json:"schema"`
	// Settings are the server's TLS settings that the auditor role may read (ssl, ssl_min_protocol_version,
	// ...), by name; file paths and the passphrase command are not read.
	Settings map[string]string `json:"settings"`
	// Unreadable are the settings of that list the auditor role may not read (without
	// pg_read_all_settings, PostgreSQL hides ssl_min_protocol_version and others from it).
	Unreadable []string `json:"unreadable_settings"`
	// Sessions are pg_stat_ssl of the export's sessions, by the role each connected as.
	Sessions []SessionTLS `json:"sessions"`
}

// SessionTLS is pg_stat_ssl of one session.
type SessionTLS struct {
	Role     string  `json:"role"`
	SSL      bool    `json:"ssl"`
	Version  *string `json:"version"`
	Cipher   *string `json:"cipher"`
	Bits     *int32  `json:"bits"`
	ClientDN *string `json:"client_dn"`
}

// tlsSettings are the settings tls.json reports.
var tlsSettings = []string{"ssl", "ssl_min_protocol_version", "ssl_max_protocol_version", "ssl_ciphers",
	"ssl_prefer_server_ciphers", "ssl_ecdh_curve", "password_encryption"}

func readTLSSettings(ctx context.Context, q pgx.Tx, t *TLS) error {
	rows, err := q.Query(ctx, "SELECT name, setting FROM pg_settings WHERE name = ANY($1)", tlsSettings)
	if err != nil {
		return fmt.Errorf("evidence: TLS settings: %w", err)
	}
	t.Settings, t.Unreadable = map[string]string{}, []string{}
	var name, value string
	if _, err := pgx.ForEachRow(rows, []any{&name, &value}, func() error { t.Settings[name] = value; return nil }); err != nil {
		return fmt.Errorf("evidence: TLS settings: %w", err)
	}
	for _, name := range tlsSettings {
		if _, ok := t.Settings[name]; !ok {
			t.Unreadable = append(t.Unreadable, name)
		}
	}
	return nil
}

func readSessionTLS(ctx context.Context, q pgx.Tx) (SessionTLS, error) {
	var s SessionTLS
	err := q.QueryRow(ctx, `SELECT current_user, coalesce(s.ssl, false), s.version, s.cipher, s.bits, s.client_dn
		FROM (SELECT 1) AS one LEFT JOIN pg_stat_ssl s ON s.pid = pg_backend_pid()`).Scan(&s.Role, &s.SSL, &s.Version, &s.Cipher, &s.Bits, &s.ClientDN)
	if err != nil {
		return s, fmt.Errorf("evidence: pg_stat_ssl: %w", err)
	}
	return s, nil
}
