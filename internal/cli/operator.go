package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
)

// envOperator names the operator in the audit log when set: a CI job, an on-call ticket. Otherwise the
// OS user and the host name do.
const envOperator = "TENANTSEAL_OPERATOR"

// operatorName is who runs this command, as the audit log records it.
func operatorName() string {
	if n := os.Getenv(envOperator); n != "" {
		return n
	}
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}

// asOperator returns ctx carrying the operator's Principal: a Subject and no tenant.
func asOperator(ctx context.Context) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.OperatorPrincipal(operatorName()))
}

// auditLog records a command's operator actions in the audit log, through an audit writer connected as
// the audit writer role, so that every change an operator makes names who made it.
type auditLog struct {
	s   *session
	cmd string
	w   *audit.Writer
	// done says what happened, for a message when its record fails: "done" unless set.
	done string
}

// openAuditLog starts an audit writer for cmd (its connection string: --audit-dsn, else
// $TENANTSEAL_AUDIT_WRITER_DSN, else the secrets file). Opened before the command changes anything: without it nothing changes.
func openAuditLog(ctx context.Context, s *session, conn *connFlags, cmd string) (*auditLog, error) {
	writerDSN, err := conn.roleDSN("audit writer", conn.auditDSN, "--audit-dsn", keyAuditWriterDSN)
	if err != nil {
		return nil, fmt.Errorf("%s records what it changes in the audit log: %w", cmd, err)
	}
	acfg, err := audit.ParseConfig(writerDSN)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", cmd, keyAuditWriterDSN, err)
	}
	// The spool is the library's default, in the working directory: the next writer started there
	// replays what this one could not write.
	acfg.SpoolPath = audit.DefaultSpoolPath
	acfg.Logger, acfg.MeterProvider = s.logger(), s.meters
	acfg.AllowPlaintextLoopback = allowPlaintextLoopback()
	w, err := audit.NewWriter(ctx, acfg)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot record in the audit log, so nothing was changed: %w", cmd, err)
	}
	return &auditLog{s: s, cmd: cmd, w: w}, nil
}

// close waits until the database holds what was recorded and closes the writer. The changes have
// happened whatever it returns: a failure says so, and where the events wait, on stderr, and makes the
// command fail with errReported. err is the command's own result, returned as it is when it failed.
func (l *auditLog) close(ctx context.Context, err error) error {
	// The changes are made: an interrupt now must not cost their record.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	written, ferr := l.w.Flush(wctx)
	if cerr := l.w.Close(wctx); ferr == nil && !written {
		ferr = cerr
	}
	if written || l.w.Stats().Recorded == 0 {
		return err
	}
	done := l.done
	if done == "" {
		done = "done"
	}
	var msg string
	if ferr != nil {
		msg = fmt.Sprintf("%s: %s, but recording that in the audit log failed: %v", l.cmd, done, ferr)
	} else {
		spool, aerr := filepath.Abs(audit.DefaultSpoolPath)
		if aerr != nil {
			spool = audit.DefaultSpoolPath
		}
		msg = fmt.Sprintf("%s: %s, but the audit log could not be written (see the log lines above): the record waits in the spool file %s, which the next audit writer started in that directory replays", l.cmd, done, spool)
	}
	if err != nil {
		return err
	}
	// Printed here, not returned: exit would replace any message with "interrupted" after a signal.
	fmt.Fprintln(l.s.stderr, "tenantseal: "+l.s.redact(oneLine(msg)))
	return errReported
}
