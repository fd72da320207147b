package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
)

// flags is a command's flag set with its usage text.
type flags struct {
	*flag.FlagSet
	s        *session
	name     string // command path, e.g. "migrate"
	synopsis string // arguments after the command path
	about    string // paragraphs printed after the synopsis
}

func newFlags(s *session, name, synopsis, about string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package would print errors and the whole usage; we print one line instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flags{FlagSet: fs, s: s, name: name, synopsis: synopsis, about: about}
}

// usage writes the command's usage to w.
func (f *flags) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: tenantseal %s %s\n", f.name, f.synopsis)
	if f.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(f.about))
	}
	hasFlags := false
	f.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// parse parses args, accepting flags before, between and after positional arguments (a lone "--" ends
// the flags), and returns the positional arguments. -h prints the usage and returns errHelp.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.usage(f.s.stderr)
			return nil, errHelp
		}
		if err != nil {
			return nil, usageErrorf("%s: %v (see 'tenantseal %s -h')", f.name, err, f.name)
		}
		rest := f.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		// Parse stopped at a non-flag. A negative number is an argument too (`migrate force -1`).
		pos = append(pos, rest[0])
		args = rest[1:]
		for len(args) > 0 && isNegativeNumber(args[0]) {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
}

func isNegativeNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil && strings.HasPrefix(s, "-")
}

// connFlags are the connection flags of the commands that act as the owner.
type connFlags struct {
	dsn      string
	auditDSN string // the audit writer's, for commands that record what they change
	secrets  string
	timeout  time.Duration
	f        *flags
}

const (
	envOwnerDSN    = "TENANTSEAL_OWNER_DSN"
	defaultSecrets = "tenantseal-secrets.env"
)

func (f *flags) ownerConn() *connFlags {
	c := &connFlags{f: f}
	f.StringVar(&c.dsn, "dsn", "", "owner connection string (default $"+envOwnerDSN+", then the secrets file)")
	f.StringVar(&c.auditDSN, "audit-dsn", "", "with what changes something: the audit writer's connection string, to record it (default $"+keyAuditWriterDSN+", then the secrets file)")
	f.StringVar(&c.secrets, "secrets", secretsPath(), "secrets file that bootstrap wrote (default $"+envSecrets+", then "+defaultSecrets+")")
	f.DurationVar(&c.timeout, "connect-timeout", db.DefaultConnectTimeout, "give up connecting after this long (unless the connection string sets connect_timeout)")
	return c
}

func (f *flags) set(name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// subcommand names a subcommand and the flags it accepts, space-separated.
type subcommand struct {
	name, flags string
}

// ownerFlags are the flags of ownerConn, accepted by every subcommand that connects as the owner.
const ownerFlags = "dsn audit-dsn secrets connect-timeout"

// checkSub fails with a usage error when a flag is set that subcommand sub does not take, naming the
// subcommands that do.
func (f *flags) checkSub(subs []subcommand, sub string) error {
	takes := func(sc subcommand, flag string) bool { return slices.Contains(strings.Fields(sc.flags), flag) }
	var err error
	f.Visit(func(fl *flag.Flag) {
		if err != nil {
			return
		}
		var with []string
		for _, sc := range subs {
			if takes(sc, fl.Name) {
				if sc.name == sub {
					return
				}
				with = append(with, sc.name)
			}
		}
		err = usageErrorf("%s %s: --%s goes with %s only", f.name, sub, fl.Name, strings.Join(with, ", "))
	})
	return err
}

// ownerDSN resolves the owner connection string: --dsn, $TENANTSEAL_OWNER_DSN, the secrets file.
func (c *connFlags) ownerDSN() (string, error) {
	return c.roleDSN("owner", c.dsn, "--dsn", envOwnerDSN)
}

// auditorConn registers the connection flags of the commands that read the audit log as the auditor.
func (f *flags) auditorConn() *connFlags {
	c := &connFlags{f: f}
	f.StringVar(&c.dsn, "dsn", "", "auditor connection string (default $"+keyAuditorDSN+", then the secrets file)")
	f.StringVar(&c.secrets, "secrets", secretsPath(), "secrets file that bootstrap wrote (default $"+envSecrets+", then "+defaultSecrets+")")
	f.DurationVar(&c.timeout, "connect-timeout", db.DefaultConnectTimeout, "give up connecting after this long (unless the connection string sets connect_timeout)")
	return c
}

// auditorDSN resolves the auditor connection string: --dsn, $TENANTSEAL_AUDITOR_DSN, the secrets file.
func (c *connFlags) auditorDSN() (string, error) {
	return c.roleDSN("auditor", c.dsn, "--dsn", keyAuditorDSN)
}

// roleDSN resolves the connection string of role: the value of the flag named flagName (none when
// ""), $key, the key line of the secrets file.
func (c *connFlags) roleDSN(role, dsn, flagName, key string) (string, error) {
	if dsn == "" {
		dsn = os.Getenv(key)
	}
	if dsn == "" {
		sf, err := readSecrets(c.secrets)
		switch {
		case errors.Is(err, os.ErrNotExist) && !c.f.set("secrets") && os.Getenv(envSecrets) == "":
			pass := ""
			if flagName != "" {
				pass = "pass " + flagName + ", "
			}
			return "", usageErrorf("%s: no %s connection string: %sset $%s, or run 'tenantseal bootstrap' to write %s", c.f.name, role, pass, key, defaultSecrets)
		case err != nil:
			return "", err
		}
		dsn = sf.get(key)
		if dsn == "" {
			return "", fmt.Errorf("%s has no %s line", c.secrets, key)
		}
	}
	return c.prepare(dsn)
}

// prepare registers the passwords of dsn as secrets and applies the connect timeout.
func (c *connFlags) prepare(dsn string) (string, error) {
	return prepareDSN(c.f.s, dsn, c.timeout)
}

// prepareDSN registers the passwords of raw as secrets, parses it (any form internal/dsn accepts, pgx5://
// too), sets connect_timeout (whole seconds, at least 1) unless raw or $PGCONNECT_TIMEOUT sets one, checks
// it with pgx, refuses it unless it is TLS verify-full (db.CheckTransport; plaintext to loopback with
// $TENANTSEAL_ALLOW_PLAINTEXT_LOOPBACK=1), and returns it as keyword/value.
func prepareDSN(s *session, raw string, timeout time.Duration) (string, error) {
	s.connSecrets(raw)
	if timeout < 0 {
		return "", usageErrorf("--connect-timeout must not be negative")
	}
	set, err := dsn.Parse(raw)
	if err == nil && timeout > 0 && !set.Has(dsn.ConnectTimeout) && os.Getenv("PGCONNECT_TIMEOUT") == "" {
		set.Set(dsn.ConnectTimeout, strconv.Itoa(max(1, int((timeout+time.Second-1)/time.Second))))
	}
	if err == nil {
		err = set.Validate()
	}
	if err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), "dsn: "))
	}
	cs := set.ConnString()
	cc, err := pgconn.ParseConfig(cs)
	if err != nil {
		// Validate parsed the same string a moment ago: a CA or key file changed in between.
		if verr := set.Validate(); verr != nil {
			return "", errors.New(strings.TrimPrefix(verr.Error(), "dsn: "))
		}
		return "", errors.New("cannot parse connection string: its TLS files changed while it was read")
	}
	if err := db.CheckTransport(cc, allowPlaintextLoopback()); err != nil {
		return "", err
	}
	return cs, nil
}

// allowPlaintextLoopback reports whether $TENANTSEAL_ALLOW_PLAINTEXT_LOOPBACK=1 allows plaintext
// connections to loopback hosts.
func allowPlaintextLoopback() bool { return os.Getenv(db.EnvAllowPlaintextLoopback) == "1" }

// listFlag is a flag that may be repeated, each value also a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			return errors.New("empty name")
		}
		*l = append(*l, s)
	}
	return nil
}

// outputFlags are --format, --quiet and --verbose of the commands that report.
type outputFlags struct {
	format         string
	quiet, verbose bool
	formats        []string
	f              *flags
}

// output registers --format (the first of formats is the default), --quiet and --verbose.
func (f *flags) output(formats ...string) *outputFlags {
	o := &outputFlags{f: f, formats: formats}
	if len(formats) > 0 {
		f.StringVar(&o.format, "format", formats[0], "output format: "+strings.Join(formats, " or ")+" (json: the schema in 'tenantseal "+f.name+" -h')")
	}
	f.BoolVar(&o.quiet, "quiet", false, "print only results and errors: no progress, hints or next steps")
	f.BoolVar(&o.verbose, "verbose", false, "print more: what each step did")
	return o
}

// check validates the flags after parsing and sets the session's verbosity.
func (o *outputFlags) check() error {
	if len(o.formats) > 0 && !slices.Contains(o.formats, o.format) {
		return usageErrorf("%s: --format %q: want %s", o.f.name, o.format, strings.Join(o.formats, " or "))
	}
	if o.quiet && o.verbose {
		return usageErrorf("%s: give --quiet or --verbose, not both", o.f.name)
	}
	o.f.s.quiet, o.f.s.verbose = o.quiet || o.format == "json", o.verbose
	return nil
}

func (o *outputFlags) json() bool { return o.format == "json" }
