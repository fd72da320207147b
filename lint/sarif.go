package lint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// SARIFOptions configure [WriteSARIF].
type SARIFOptions struct {
	// DocBase is prepended to each rule's [RuleInfo.DocPath] for the rule's helpUri, which SARIF wants
	// absolute. Default [DefaultDocBase]; the rule's page is in its help text as well.
	DocBase string
	// Artifact, when set, is the file every result is attached to (e.g. "migrations/"), relative to the
	// repository root: GitHub code scanning shows only results with a physical location. The findings
	// themselves are about database objects, named as each result's logical location.
	Artifact string
	// Version is the tool version reported in the log, e.g. "v1.4.0"; optional.
	Version string
}

// DefaultDocBase is where the rule pages are published.
const DefaultDocBase = "https://github.com/tenantseal/tenantseal/blob/main/"

// SARIF 2.1.0, the parts written here.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     sarifText         `json:"shortDescription"`
		FullDescription      sarifText         `json:"fullDescription"`
		Help                 sarifMarkdown     `json:"help"`
		HelpURI              string            `json:"helpUri"`
		DefaultConfiguration sarifConfig       `json:"defaultConfiguration"`
		Properties           map[string]string `json:"properties"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifMarkdown struct {
		Text     string `json:"text"`
		Markdown string `json:"markdown"`
	}
	sarifConfig struct {
		Level string `json:"level"`
	}
	sarifResult struct {
		RuleID              string            `json:"ruleId"`
		RuleIndex           int               `json:"ruleIndex"`
		Level               string            `json:"level"`
		Message             sarifText         `json:"message"`
		Locations           []sarifLocation   `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints"`
		Properties          map[string]string `json:"properties,omitempty"`
	}
	sarifLocation struct {
		PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
		LogicalLocations []sarifLogical `json:"logicalLocations"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           sarifRegion   `json:"region"`
	}
	sarifArtifact struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	sarifLogical struct {
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
)

// fingerprint identifies a finding across runs, as a [Baseline] does.
func fingerprint(f Finding) string {
	sum := sha256.Sum256([]byte(f.Rule + "\x00" + f.Object + "\x00" + f.Message))
	return hex.EncodeToString(sum[:16])
}

// WriteSARIF writes findings as a SARIF 2.1.0 log (for GitHub code scanning and other viewers): one run
// whose tool lists every rule with its documentation, and one result per finding, its fix hint among
// the result's properties. Levels are "error" and "warning", as the severities.
func WriteSARIF(w io.Writer, fs []Finding, opts SARIFOptions) error {
	base := opts.DocBase
	if base == "" {
		base = DefaultDocBase
	}
	driver := sarifDriver{Name: "tenantseal lint", Version: opts.Version,
		InformationURI: base + "docs/lint/README.md", Rules: []sarifRule{}}
	index := map[string]int{}
	for i, r := range Rules() {
		index[r.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID:                   r.ID,
			Name:                 ruleName(r.Title),
			ShortDescription:     sarifText{r.Title},
			FullDescription:      sarifText{r.Why},
			Help:                 sarifMarkdown{Text: r.Why + "\n\nHow to fix: " + r.HowToFix, Markdown: ruleMarkdown(r, false)},
			HelpURI:              base + r.DocPath(),
			DefaultConfiguration: sarifConfig{Level: string(r.Severity)},
			Properties:           map[string]string{"docPath": r.DocPath()},
		})
	}
	results := []sarifResult{}
	for _, f := range fs {
		i, ok := index[f.Rule]
		if !ok {
			return fmt.Errorf("lint: write SARIF: unknown rule %q", f.Rule)
		}
		loc := sarifLocation{LogicalLocations: []sarifLogical{{FullyQualifiedName: f.Object, Kind: "resource"}}}
		if opts.Artifact != "" {
			loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: opts.Artifact}, Region: sarifRegion{StartLine: 1}}
		}
		res := sarifResult{RuleID: f.Rule, RuleIndex: i, Level: string(f.Severity),
			Message:             sarifText{f.Object + ": " + f.Message},
			Locations:           []sarifLocation{loc},
			PartialFingerprints: map[string]string{"tenantsealFinding/v1": fingerprint(f)}}
		if f.Fix != "" {
			res.Properties = map[string]string{"fix": f.Fix}
		}
		results = append(results, res)
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0",
		Runs: []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("lint: write SARIF: %w", err)
	}
	return nil
}

// ruleName is a rule's title in UpperCamelCase, as SARIF's reportingDescriptor.name recommends:
// "tenant table with row-level security disabled" -> "TenantTableWithRowLevelSecurityDisabled".
func ruleName(title string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(title, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}
