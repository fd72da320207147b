// Package dsn parses PostgreSQL connection strings once into [Settings], changes them as fields and
// writes them back, so that no code edits a connection string as text; a [Redactor] keeps the passwords
// of the connection strings in play out of every message.
//
// # Accepted forms
//
// Keyword/value (host=h port=5432 user=u password='a b\'c' dbname=d) and URLs with the schemes
// postgres:// and postgresql://, parsed as libpq and pgx parse them (multiple hosts, percent-encoding,
// ssl=true), and golang-migrate's pgx5://, pgx4:// and pgx://, which the stock migrate CLI needs: the
// same connection string works for both, and golang-migrate's own x-... query parameters are dropped.
//
// # Editing
//
//	s, err := dsn.Parse(raw)
//	if err != nil { ... }        // the error never quotes raw
//	s.Set(dsn.Database, "other")
//	if err := s.Validate(); err != nil { ... } // what pgconn.ParseConfig says of it
//	conn, err := pgx.Connect(ctx, s.ConnString())
//
// [Settings.ConnString] writes keyword/value, [Settings.URL] a postgres:// URL; [Settings.String] masks
// the passwords, so that printing Settings shows none.
//
// # Redaction
//
// [Redactor.AddConnString] registers every password and sslpassword of a connection string, also one that
// does not parse; [Redactor.Redact] replaces them in a message in every spelling a message may hold (raw,
// percent-encoded for a query or a path or userinfo, backslash-escaped, Go-quoted), then masks whatever
// still looks like a password in a connection string: the userinfo of a URL of any scheme and password= in
// keyword/value or query form.
package dsn
