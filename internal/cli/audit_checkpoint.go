package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/keys"
)

var auditCheckpointAbout = `
Checkpoints (signed heads of the log, kept outside the database):

	keygen --key FILE --origin NAME [--local]
	                            create the signing key of the log named NAME (its checkpoints' origin,
	                            such as example.com/audit): a Tink Ed25519 keyset wrapped by the KEK
	                            (--kek, $TENANTSEAL_KEK_URI or the secrets file), or with --local a key in
	                            clear for development. Mode 0600, never overwritten. Writes the verifier
	                            key to FILE.pub and prints it: give it to whoever verifies.
	checkpoint --key FILE --checkpoints DIR
	                            sign the log's current size and Merkle root now and publish the checkpoint
	                            into DIR (one file per checkpoint, never overwritten, and latest). Reads
	                            only. Refuses a log that no longer matches DIR's latest checkpoint.
	verify --checkpoints DIR --verifier-key FILE
	                            also check every checkpoint in DIR: its signature and origin, its root
	                            against the tree recomputed from the entries, the consistency between
	                            successive ones; report the anchored and the not yet anchored entries.
	                            Exit 1 on a rewritten history or a bad checkpoint; json adds "anchored":
	                            [{"from", "to", "checkpoint"}], "unanchored": {"from", "to"} or null,
	                            "bad_checkpoint": {"file", "reason"} or null
	prove SEQ --checkpoints DIR --verifier-key FILE
	                            print, as JSON (tenantseal/audit-inclusion/v1), the proof that entry SEQ
	                            is in the log of DIR's latest checkpoint, checked before it is printed`

// checkpointFlags are the flags of the checkpoint subcommands.
type checkpointFlags struct {
	key, origin, dir, verifierKey *string
	local                         *bool
	kek                           *kekFlags
}

func (f *flags) checkpointFlags(conn *connFlags) *checkpointFlags {
	return &checkpointFlags{
		key:         f.String("key", "", "with keygen, checkpoint: the signing key file"),
		origin:      f.String("origin", "", "with keygen: the log's name, its checkpoints' origin line (such as example.com/audit)"),
		local:       f.Bool("local", false, "with keygen: a development key in clear instead of one wrapped by the KEK"),
		dir:         f.String("checkpoints", "", "with checkpoint, verify, prove: the checkpoint directory"),
		verifierKey: f.String("verifier-key", "", "with verify, prove: the verifier key file (keygen's FILE.pub)"),
		kek:         f.kekFlag(conn),
	}
}

// checkpointSubcommands are the flags of the checkpoint subcommands, for checkSub.
var checkpointSubcommands = []subcommand{
	{"keygen", "key origin local kek secrets"},
	{"checkpoint", ownerFlags + " key checkpoints kek"},
	{"prove", ownerFlags + " checkpoints verifier-key"},
}

// runKeygen is `audit keygen`: it connects to nothing.
func runKeygen(ctx context.Context, s *session, cf *checkpointFlags, f *flags) error {
	if *cf.key == "" || *cf.origin == "" {
		return usageErrorf("audit keygen: --key FILE and --origin NAME are required")
	}
	if f.set("kek") && *cf.local {
		return usageErrorf("audit keygen: --local and --kek exclude each other")
	}
	var vkey string
	if *cf.local {
		v, err := audit.CreateKeyFile(*cf.key, *cf.origin)
		if err != nil {
			return err
		}
		vkey = v
	} else {
		ref, err := cf.kek.resolve()
		if err != nil {
			return err
		}
		kek, err := openKEK(ctx, s, ref)
		if err != nil {
			return err
		}
		k, err := keys.CreateSigningKeyFile(kek, *cf.key, *cf.origin)
		if err != nil {
			return err
		}
		signer, err := audit.NewSigner(k.Name(), k.PublicKey(), k.Sign)
		if err != nil {
			os.Remove(*cf.key)
			return err
		}
		vkey = signer.VerifierKey()
	}
	if err := os.WriteFile(*cf.key+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("audit keygen: write the verifier key: %w", err)
	}
	s.printf("%s\n", vkey)
	s.info("signing key written to %s, verifier key to %s.pub", *cf.key, *cf.key)
	return nil
}

// openSigner opens the signing key file: a development key, or one wrapped by the KEK.
func openSigner(ctx context.Context, s *session, cf *checkpointFlags) (*audit.Signer, error) {
	raw, err := os.ReadFile(*cf.key)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: signing key: %w", err)
	}
	if audit.IsLocalKeyFile(raw) {
		return audit.OpenKeyFile(*cf.key)
	}
	ref, err := cf.kek.resolve()
	if err != nil {
		return nil, err
	}
	kek, err := openKEK(ctx, s, ref)
	if err != nil {
		return nil, err
	}
	k, err := keys.OpenSigningKeyFile(kek, *cf.key)
	if err != nil {
		return nil, err
	}
	return audit.NewSigner(k.Name(), k.PublicKey(), k.Sign)
}

// runCheckpoint is `audit checkpoint`: it signs the head now, reading as the auditor.
func runCheckpoint(ctx context.Context, s *session, c *pgx.Conn, cf *checkpointFlags) error {
	signer, err := openSigner(ctx, s, cf)
	if err != nil {
		return err
	}
	dir := audit.Dir(*cf.dir)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Querier: c, Signer: signer, Publisher: dir})
	if err != nil {
		return err
	}
	got, err := cp.Checkpoint(ctx)
	if err != nil {
		return auditError("checkpoint", c, err)
	}
	s.printf("checkpoint of %d entries of %s published in %s\n", got.Size, got.Origin, *cf.dir)
	return nil
}

// anchorFlags reads the verifier key and the checkpoints of verify and prove; none when neither flag is
// set (verify only).
func anchorFlags(ctx context.Context, sub string, cf *checkpointFlags) (note.Verifier, []audit.SignedCheckpoint, error) {
	switch {
	case sub != "verify" && sub != "prove":
		return nil, nil, nil
	case *cf.dir == "" && *cf.verifierKey == "" && sub == "verify":
		return nil, nil, nil
	}
	return readAnchors(ctx, "audit "+sub, *cf.dir, *cf.verifierKey)
}

// readAnchors reads the verifier key file and the signed checkpoints of dir, for the command cmd.
func readAnchors(ctx context.Context, cmd, dir, verifierKey string) (note.Verifier, []audit.SignedCheckpoint, error) {
	if dir == "" || verifierKey == "" {
		return nil, nil, usageErrorf("%s: --checkpoints DIR and --verifier-key FILE go together", cmd)
	}
	raw, err := os.ReadFile(verifierKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: verifier key: %w", cmd, err)
	}
	v, err := audit.ParseVerifierKey(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s (%s)", err, verifierKey)
	}
	signed, err := audit.Dir(dir).Checkpoints(ctx)
	if err != nil {
		return nil, nil, err
	}
	return v, signed, nil
}

// verifyAnchoredJSON is `audit verify --format json` with checkpoints: tenantseal/audit-verify/v1 and
// what the checkpoints say.
type verifyAnchoredJSON struct {
	verifyJSON
	Anchored      []audit.AnchoredRange `json:"anchored"`
	Unanchored    *audit.Range          `json:"unanchored"`
	BadCheckpoint *badCheckpointJSON    `json:"bad_checkpoint"`
}

type badCheckpointJSON struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// anchoredJSON is res as `audit verify --format json` writes it.
func anchoredJSON(res *audit.AnchorResult) verifyAnchoredJSON {
	out := verifyAnchoredJSON{verifyJSON: verifyJSON{Schema: "tenantseal/audit-verify/v1", Intact: res.OK(), Verified: res.Rows},
		Anchored: res.Anchored, Unanchored: res.Unanchored}
	if out.Anchored == nil {
		out.Anchored = []audit.AnchoredRange{}
	}
	if res.Break != nil {
		out.BrokenAt, out.Reason = &res.Break.Seq, &res.Break.Reason
	}
	if b := res.BadCheckpoint; b != nil {
		out.BadCheckpoint = &badCheckpointJSON{File: b.Name, Reason: b.Reason}
	}
	return out
}

// verifyAnchored prints the outcome of audit.VerifyCheckpoints; a break or a bad checkpoint is a
// failure the report explains.
func verifyAnchored(ctx context.Context, s *session, c *pgx.Conn, v note.Verifier, signed []audit.SignedCheckpoint, jsonOut bool) error {
	res, err := audit.VerifyCheckpoints(ctx, c, v, signed)
	if err != nil {
		return auditError("verify", c, err)
	}
	if jsonOut {
		b, err := json.Marshal(anchoredJSON(&res))
		if err != nil {
			return err
		}
		s.printf("%s\n", b)
		if !res.OK() {
			return errReported
		}
		return nil
	}
	if b := res.BadCheckpoint; b != nil {
		s.printf("checkpoint %s rejected: %s\n", b.Name, b.Reason)
	}
	if res.Break != nil {
		s.printf("audit log broken at seq %d: %s\n", res.Break.Seq, res.Break.Reason)
	}
	if !res.OK() {
		return errReported
	}
	s.printf("audit log intact: %d entries; %s\n", res.Rows, anchoredSummary(&res))
	return nil
}

// anchoredSummary says in one line which entries the checkpoints anchor and which not yet, or, when
// the log or a checkpoint does not hold, what broke.
func anchoredSummary(res *audit.AnchorResult) string {
	var parts []string
	if b := res.BadCheckpoint; b != nil {
		parts = append(parts, fmt.Sprintf("checkpoint %s rejected: %s", b.Name, b.Reason))
	}
	if res.Break != nil {
		parts = append(parts, fmt.Sprintf("audit log broken at seq %d: %s", res.Break.Seq, res.Break.Reason))
	}
	if n := len(res.Anchored); n > 0 {
		parts = append(parts, fmt.Sprintf("entries %d..%d anchored by %d checkpoints (the last %s)", res.Anchored[0].From, res.Anchored[n-1].To, n, res.Anchored[n-1].Checkpoint))
	}
	if u := res.Unanchored; u != nil {
		parts = append(parts, fmt.Sprintf("entries %d..%d not anchored yet (after the last checkpoint)", u.From, u.To))
	}
	if len(parts) == 0 {
		parts = append(parts, "no entries")
	}
	return strings.Join(parts, "; ")
}

// runProve is `audit prove SEQ`.
func runProve(ctx context.Context, s *session, c *pgx.Conn, arg string, v note.Verifier, signed []audit.SignedCheckpoint) error {
	seq, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || seq < 1 {
		return usageErrorf("audit prove: %q: want the sequence number of an entry (1 or more)", arg)
	}
	var latest *audit.SignedCheckpoint
	for i := range signed {
		if signed[i].Name == audit.LatestName {
			latest = &signed[i]
		}
	}
	if latest == nil {
		return errors.New("audit prove: the checkpoint directory has no latest checkpoint: run 'tenantseal audit checkpoint' first")
	}
	p, err := audit.ProveEntry(ctx, c, v, *latest, seq)
	if err != nil {
		return auditError("prove", c, err)
	}
	if _, err := audit.CheckInclusion(p, v); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	s.printf("%s\n", b)
	return nil
}
