package cli

import (
	"context"
	"runtime"
	"runtime/debug"
)

// Version is the release version; release builds set it with
// -ldflags "-X github.com/tenantseal/tenantseal/internal/cli.Version=v1.2.3".
var Version = ""

var versionCommand = command{
	name:    "version",
	summary: "print the version",
	run:     runVersion,
}

func runVersion(_ context.Context, s *session, args []string) error {
	f := newFlags(s, "version", "", "Prints the version of tenantseal, the Go version and the VCS revision it was built from.")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("version: unexpected argument %q", pos[0])
	}
	v, rev := buildVersion()
	s.printf("tenantseal %s %s", v, runtime.Version())
	if rev != "" {
		s.printf(" %s", rev)
	}
	s.printf("\n")
	return nil
}

// buildVersion returns the release version ("(devel)" for none) and the VCS revision the binary was
// built from ("" when unknown; "+modified" when the tree had changes).
func buildVersion() (v, rev string) {
	v = Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		var modified bool
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				modified = kv.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified {
			rev += "+modified"
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v, rev
}

// versionString is the version and the revision, as the evidence manifest records them.
func versionString() string {
	v, rev := buildVersion()
	if rev != "" {
		return v + " " + rev
	}
	return v
}
