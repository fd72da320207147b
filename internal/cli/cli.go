package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tenantseal/tenantseal/internal/bench"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/keys"

	"go.opentelemetry.io/otel/metric"
)

// command is one `tenantseal <name>` subcommand.
type command struct {
	name    string
	summary string // one line for `tenantseal help`
	// run parses args (everything after the command name) and runs the command. `-h` makes it print its
	// usage and return errHelp.
	run func(ctx context.Context, s *session, args []string) error
}

// commands is the command table, in the order `tenantseal help` lists them. A new command is a file that
// defines a command value and one line here.
func commands() []command {
	return []command{
		bootstrapCommand,
		migrateCommand,
		adoptCommand,
		tenantsCommand,
		retentionCommand,
		keysCommand,
		auditCommand,
		contextKeyCommand,
		lintCommand,
		isolationCheckCommand,
		citusCommand,
		evidenceCommand,
		benchCommand,
		demoCommand,
		versionCommand,
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// session is what a command runs with: its streams, the build's options and the secrets to keep out of
// messages.
type session struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	opts           Options
	redactor       dsn.Redactor
	// quiet drops what info prints; verbose adds what detail prints (--quiet, --verbose).
	quiet, verbose bool
	// meters provides the instruments of the pools, audit writers and keyrings the command opens: the
	// Prometheus endpoint's with --metrics-addr, else nil (the libraries' default, which records nothing).
	meters metric.MeterProvider
}

// secret registers v so that no message prints it.
func (s *session) secret(v string) { s.redactor.AddSecret(v) }

// connSecrets registers the passwords of connection string cs so that no message prints them.
func (s *session) connSecrets(cs string) { s.redactor.AddConnString(cs) }

// redact removes every registered secret, and whatever looks like a password in a connection string,
// from msg.
func (s *session) redact(msg string) string { return s.redactor.Redact(msg) }

// logger is the libraries' logger: warnings and errors, as text on stderr.
func (s *session) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (s *session) printf(format string, a ...any) { fmt.Fprintf(s.stdout, format, a...) }

// info prints a hint or next step to stderr, unless --quiet (or a machine format) asked for none.
func (s *session) info(format string, a ...any) {
	if !s.quiet {
		fmt.Fprintf(s.stderr, format, a...)
	}
}

// detail prints what a step did to stderr with --verbose.
func (s *session) detail(format string, a ...any) {
	if s.verbose {
		fmt.Fprintf(s.stderr, format, a...)
	}
}

// Options are what a build of the command line adds to it. The zero value is the shipped tenantseal.
type Options struct {
	// StartServer starts a throwaway PostgreSQL for demo and bench when they get no --dsn. Nil: they need
	// --dsn. The development binary (internal/cmd/tenantseal-dev) sets it: the shipped one links no
	// container library.
	StartServer func(ctx context.Context) (*Server, error)
	// KMS returns the KMS clients that open KEKs by URI (gcp-kms://, aws-kms://, hcvault://), asked
	// before Tink's registry: cmd/tenantseal passes keys/kms.Clients. Nil: the registry's alone.
	KMS func(ctx context.Context) []keys.KMSClient

	// beforeMetricsStop, if set, is called with the URL of the metrics before their server stops at the
	// end of the command (a test hook).
	beforeMetricsStop func(url string)
}

// Server is a PostgreSQL server that [Options.StartServer] started.
type Server struct {
	// SuperDSN connects as a superuser.
	SuperDSN string
	// Describe says what the server is, for the operator: "postgres:17-alpine, listening on ...".
	Describe string
	// Stop removes the server. Nil: the server is someone else's, and demo and bench drop what they
	// create on it, and refuse to touch what exists, as with --dsn.
	Stop func(context.Context) error
	// Callgrind, if set, starts another throwaway server whose backends count their instructions, for
	// bench's instruction counts.
	Callgrind func(context.Context) (bench.Instrumented, error)
}

// Run runs the tenantseal command line args (without the program name) and returns the exit status: 0 on
// success, 1 on failure, 2 on a usage error (isolation-check: 3 when the check could not run; evidence export: 4 when the bundle was written but a check failed). SIGINT and SIGTERM cancel the running command, which then
// cleans up (the demo drops what it created, a re-encryption stops after the batch in flight) and exits
// 130 or 143, as a shell reports a process those signals ended; a second signal ends it at once.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return RunWith(Options{}, args, stdin, stdout, stderr)
}

// RunWith is [Run] with the options of a build.
func RunWith(opts Options, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	ctx, stop := signalContext(context.Background())
	defer stop()
	s := &session{stdin: stdin, stdout: stdout, stderr: stderr, opts: opts}
	defer func() {
		// A bug must still end in one line, not a stack trace.
		if r := recover(); r != nil {
			fmt.Fprintln(stderr, "tenantseal: "+s.redact(oneLine(fmt.Sprintf("internal error: %v", r))))
			code = 1
		}
	}()

	metricsAddr, args, err := globalFlags(args)
	if err != nil {
		return s.exit(ctx, err)
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tenantseal: missing command; usage: tenantseal [--metrics-addr ADDR] <command> [flags] (see 'tenantseal help')")
		return 2
	}
	if metricsAddr != "" {
		stopMetrics, err := s.serveMetrics(metricsAddr)
		if err != nil {
			return s.exit(ctx, err)
		}
		defer stopMetrics()
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		err = help(ctx, s, rest)
	default:
		c, ok := lookup(name)
		if !ok {
			err = usageErrorf("unknown command %q; usage: tenantseal <command> [flags] (see 'tenantseal help')", name)
			break
		}
		err = c.run(ctx, s, rest)
	}
	return s.exit(ctx, err)
}

// exit prints err as one line and returns the exit status for it.
func (s *session) exit(ctx context.Context, err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errReported):
		if sig, ok := context.Cause(ctx).(signalled); ok {
			return sig.code
		}
		return 1
	case errors.As(err, &ue):
		fmt.Fprintln(s.stderr, "tenantseal: "+s.redact(oneLine(ue.msg)))
		return 2
	}
	msg := unprefixed(describe(err))
	if sig, ok := context.Cause(ctx).(signalled); ok {
		// Whatever failed failed because of the signal; the details are noise.
		fmt.Fprintf(s.stderr, "tenantseal: interrupted (%s)\n", sig.name)
		return sig.code
	}
	if ctx.Err() != nil {
		msg = "interrupted"
	}
	fmt.Fprintln(s.stderr, "tenantseal: "+s.redact(oneLine(msg)))
	// A command may end with a status of its own (isolation-check: 3, the check could not run).
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}

// signalled is the cause of a context that SIGINT or SIGTERM ended, with the exit status it calls for.
type signalled struct {
	name string
	code int
}

func (s signalled) Error() string { return "interrupted by " + s.name }

// signalContext returns a context that the first SIGINT or SIGTERM cancels with a [signalled] cause;
// after it the signals have their default effect again, so a second one ends the process at once.
func signalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			signal.Stop(ch)
			if sig == syscall.SIGTERM {
				cancel(signalled{"SIGTERM", 143})
			} else {
				cancel(signalled{"SIGINT", 130})
			}
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

const helpText = `tenantseal makes PostgreSQL row-level security enforce tenant isolation.

Usage:

	tenantseal [--metrics-addr ADDR] <command> [flags] [arguments]

Commands:
%s
Run 'tenantseal help <command>' or 'tenantseal <command> -h' for a command's flags.

Connection strings: commands that act as the owner take --dsn, else $TENANTSEAL_OWNER_DSN, else the
TENANTSEAL_OWNER_DSN line of the secrets file (--secrets, else $TENANTSEAL_SECRETS, else
tenantseal-secrets.env) that bootstrap writes, mode 0600: a file others may read is refused. Keep it out
of version control. Commands that wrap or unwrap tenant keysets take the key-encryption key (KEK) the
same way: --kek, else $TENANTSEAL_KEK_URI, else the secrets file. Commands that change something record
it in the audit log, with the operator ($TENANTSEAL_OPERATOR, else user@host), through the audit
writer's connection string (--audit-dsn, else $TENANTSEAL_AUDIT_WRITER_DSN, else the secrets file).

Metrics: --metrics-addr host:port (before the command) serves the command's metrics in the Prometheus
format on http://host:port/metrics while it runs (worth it for the long ones: keys reencrypt, demo):
statements and refusals of its pool by class, events of its audit writer, keyset unwraps. They name no tenant and no
secret; keep the address on loopback or where only the scraper reaches it.

Exit status: 0 done, 1 failed (one line on stderr says why), 2 a usage error, nothing done; 130 or 143
after SIGINT or SIGTERM, once the command has stopped cleanly.
`

func help(ctx context.Context, s *session, args []string) error {
	switch len(args) {
	case 0:
		var b strings.Builder
		for _, c := range commands() {
			fmt.Fprintf(&b, "\t%-12s %s\n", c.name, c.summary)
		}
		fmt.Fprintf(s.stdout, helpText, b.String())
		return nil
	case 1:
		c, ok := lookup(args[0])
		if !ok {
			return usageErrorf("unknown command %q; see 'tenantseal help'", args[0])
		}
		// Every command prints its usage on -h, to stdout when asked for.
		hs := &session{stdin: s.stdin, stdout: s.stdout, stderr: s.stdout, opts: s.opts}
		return c.run(ctx, hs, []string{"-h"})
	default:
		return usageErrorf("usage: tenantseal help [command]")
	}
}
