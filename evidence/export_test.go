package evidence_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/evidence"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The checkpoint seam: what Config.Checkpoints reports is a check of the bundle, with its details in
// audit.json, and it reads through the auditor's snapshot.
func TestCheckpointSeam(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	for _, tc := range []struct {
		name   string
		result evidence.CheckpointResult
		err    error
		want   evidence.Status
		sum    string
	}{
		{"anchored", evidence.CheckpointResult{OK: true, Summary: "entries 1-12 anchored by 1 checkpoint", Details: map[string]int{"checkpoints": 1}}, nil, evidence.StatusPass, "entries 1-12 anchored by 1 checkpoint"},
		{"rewritten", evidence.CheckpointResult{OK: false, Summary: "checkpoint 3 names another head: rewritten"}, nil, evidence.StatusFail, "checkpoint 3 names another head: rewritten"},
		{"unreadable", evidence.CheckpointResult{}, errors.New("no checkpoint directory"), evidence.StatusFail, "the checkpoints could not be checked: no checkpoint directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sawLog bool
			dir := filepath.Join(t.TempDir(), "b")
			res, err := evidence.Export(testContext(t), dir, evidence.Config{OwnerDSN: d.OwnerDSN, AuditorDSN: d.AuditorDSN,
				Checkpoints: func(ctx context.Context, q audit.Querier) (evidence.CheckpointResult, error) {
					rows, err := q.Query(ctx, "SELECT count(*) FROM tenantseal.audit_log")
					if err != nil {
						return evidence.CheckpointResult{}, err
					}
					rows.Close()
					sawLog = rows.Err() == nil
					return tc.result, tc.err
				}})
			if err != nil {
				t.Fatal(err)
			}
			if !sawLog {
				t.Error("the checkpoint check could not read the audit log through its Querier")
			}
			var got evidence.Check
			for _, c := range res.Checks {
				if c.Name == evidence.CheckCheckpoints {
					got = c
				}
			}
			if got.Status != tc.want || got.Summary != tc.sum || res.OK() != (tc.want == evidence.StatusPass) {
				t.Errorf("got check %+v (OK %v), want %s %q", got, res.OK(), tc.want, tc.sum)
			}
			var a struct {
				Checkpoints struct {
					Checked, OK bool
					Summary     string
					Details     map[string]int
				}
			}
			mustReadJSON(t, dir, evidence.FileAudit, &a)
			if !a.Checkpoints.Checked || a.Checkpoints.OK != tc.result.OK || a.Checkpoints.Summary != tc.sum {
				t.Errorf("audit.json checkpoints: got %+v", a.Checkpoints)
			}
			if tc.result.Details != nil && a.Checkpoints.Details["checkpoints"] != 1 {
				t.Errorf("audit.json checkpoints details: got %v, want the verifier's", a.Checkpoints.Details)
			}
		})
	}
}

// A connection string of the wrong role, a secret that would be written, an existing bundle, an empty
// range: refused, nothing written.
func TestExportRefusals(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	dir := func() string { return filepath.Join(t.TempDir(), "b") }
	absent := func(t *testing.T, p string) {
		t.Helper()
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a refused export (%v)", p, err)
		}
	}

	// The app role as the owner would see one tenant's keys or none.
	p := dir()
	_, err := evidence.Export(ctx, p, evidence.Config{OwnerDSN: d.AppDSN, AuditorDSN: d.AuditorDSN})
	var re *evidence.RoleError
	if !errors.As(err, &re) || re.Want != d.Roles.Owner || re.Got != d.Roles.App {
		t.Errorf("the app role as the owner: got %v, want a RoleError naming %s and %s", err, d.Roles.Owner, d.Roles.App)
	}
	absent(t, p)

	// The app role as the auditor sees part of the log.
	p = dir()
	if _, err := evidence.Export(ctx, p, evidence.Config{OwnerDSN: d.OwnerDSN, AuditorDSN: d.AppDSN}); !errors.Is(err, audit.ErrPartialLog) {
		t.Errorf("the app role as the auditor: got %v, want audit.ErrPartialLog", err)
	}
	absent(t, p)

	// A value the bundle holds (the database's name is in the manifest), named a secret.
	p = dir()
	_, err = evidence.Export(ctx, p, evidence.Config{OwnerDSN: d.OwnerDSN, AuditorDSN: d.AuditorDSN, Secrets: []string{d.Name}})
	if !errors.Is(err, evidence.ErrSecret) || strings.Contains(err.Error(), d.Name) {
		t.Errorf("a secret in the bundle: got %v, want ErrSecret that does not repeat it", err)
	}
	absent(t, p)

	// An earlier bundle stays unless Overwrite.
	p = dir()
	cfg := evidence.Config{OwnerDSN: d.OwnerDSN, AuditorDSN: d.AuditorDSN}
	if _, err := evidence.Export(ctx, p, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Export(ctx, p, cfg); !errors.Is(err, evidence.ErrNotEmpty) {
		t.Errorf("a second export into the bundle: got %v, want ErrNotEmpty", err)
	}
	cfg.Overwrite = true
	if _, err := evidence.Export(ctx, p, cfg); err != nil {
		t.Errorf("with Overwrite: %v", err)
	}

	now := time.Now()
	if _, err := evidence.Export(ctx, dir(), evidence.Config{OwnerDSN: d.OwnerDSN, AuditorDSN: d.AuditorDSN, Since: now, Until: now.Add(-time.Hour)}); err == nil || !strings.Contains(err.Error(), "the range is empty") {
		t.Errorf("since after until: got %v, want the range refused", err)
	}
}
