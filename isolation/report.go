package isolation

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is the outcome of one case against one target.
type Status string

// Statuses of a [Result].
const (
	// StatusPass: every check held.
	StatusPass Status = "pass"
	// StatusLeak: a check showed another tenant's rows, or a write reached them.
	StatusLeak Status = "leak"
	// StatusError: the case could not tell (its control failed, or the database failed otherwise).
	StatusError Status = "error"
	// StatusNA: the case does not apply to the target (a table without encrypted columns for the key cases).
	StatusNA Status = "n/a"
)

// Result is one case run against one target: a table, a view, a function or the session.
type Result struct {
	Case   string   `json:"case"`
	Group  string   `json:"group"`
	Target string   `json:"target"`
	Status Status   `json:"status"`
	Checks int      `json:"checks"`
	Leaks  []string `json:"leaks,omitempty"`
	Errors []string `json:"errors,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	// NotRun lists the checks that did not run because they write as the app role and the app role's
	// connection is a hot standby ([Report.Standby]; they run against the primary), or because Citus
	// does not run the statement ([Report.Citus]).
	NotRun []string `json:"not_run,omitempty"`
}

// TableInfo describes a table the suite discovered and seeded.
type TableInfo struct {
	Name         string   `json:"name"`
	Kind         string   `json:"kind"` // tenant or registry
	TenantColumn string   `json:"tenant_column"`
	SeededRows   int      `json:"seeded_rows"`
	RLS          bool     `json:"rls"`
	ForceRLS     bool     `json:"force_rls"`
	Encrypted    []string `json:"encrypted,omitempty"`
}

// Report is the outcome of one run of the isolation suite.
type Report struct {
	Database      string   `json:"database"`
	Server        string   `json:"server"`
	AppRole       string   `json:"app_role"`
	Schemas       []string `json:"schemas"`
	KeyType       string   `json:"key_type"`
	Tenants       int      `json:"tenants"`
	RowsPerTenant int      `json:"rows_per_tenant"`
	Short         bool     `json:"short"`
	// Standby is set when AppDSN names a hot standby: the app role's reads ran there, and its writes,
	// which a standby refuses (SQLSTATE 25006), did not run (see [Result.NotRun]).
	Standby bool `json:"standby,omitempty"`
	// Citus is set when the database is a Citus coordinator: the attacks ran against its distributed
	// tables, and those made of statements Citus does not run (SQLSTATE 0A000) are listed as not run.
	Citus    bool          `json:"citus,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Tables   []TableInfo   `json:"tables"`
	// Skipped lists the tables excluded by configuration, with the reasons given.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Swept counts what killed earlier runs had left behind and this one removed (tenants, probe
	// schemas, keys).
	Swept   int      `json:"swept,omitempty"`
	Results []Result `json:"results"`
}

// Counts returns how many results have each status.
func (r *Report) Counts() map[Status]int {
	out := map[Status]int{StatusPass: 0, StatusLeak: 0, StatusError: 0, StatusNA: 0}
	for _, res := range r.Results {
		out[res.Status]++
	}
	return out
}

// Checks returns the number of individual checks made.
func (r *Report) Checks() int {
	n := 0
	for _, res := range r.Results {
		n += res.Checks
	}
	return n
}

// Leaks returns the results with status leak.
func (r *Report) Leaks() []Result { return r.with(StatusLeak) }

// Errors returns the results with status error.
func (r *Report) Errors() []Result { return r.with(StatusError) }

func (r *Report) with(st Status) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == st {
			out = append(out, res)
		}
	}
	return out
}

// OK reports whether the run found no leak and no error.
func (r *Report) OK() bool { c := r.Counts(); return c[StatusLeak] == 0 && c[StatusError] == 0 }

// Find returns the result of a case against a target.
func (r *Report) Find(caseName, target string) (Result, bool) {
	for _, res := range r.Results {
		if res.Case == caseName && res.Target == target {
			return res, true
		}
	}
	return Result{}, false
}

// WriteText writes a matrix of cases against tables (ok, LEAK, ERR, n/a), the cases against other
// targets, the details of every leak and error, and the totals.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tenantseal isolation suite: database %s (PostgreSQL %s), app role %s, %d tenants x %d rows per table",
		r.Database, r.Server, r.AppRole, r.Tenants, r.RowsPerTenant)
	if r.KeyType != "" {
		fmt.Fprintf(&b, ", %s tenant keys", r.KeyType)
	}
	if r.Short {
		b.WriteString(", short")
	}
	if r.Standby {
		b.WriteString(", app role on a hot standby (its writes not run: run the suite against the primary for them)")
	}
	if r.Citus {
		b.WriteString(", Citus coordinator (statements Citus does not run are not run)")
	}
	b.WriteString("\n\n")
	var tables []string
	isTable := map[string]bool{}
	for _, t := range r.Tables {
		tables = append(tables, t.Name)
		isTable[t.Name] = true
	}
	var caseOrder []string
	cells := map[string]map[string]Status{}
	var others []Result
	for _, res := range r.Results {
		if !isTable[res.Target] {
			others = append(others, res)
			continue
		}
		if cells[res.Case] == nil {
			cells[res.Case] = map[string]Status{}
			caseOrder = append(caseOrder, res.Case)
		}
		cells[res.Case][res.Target] = res.Status
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "case\t%s\t\n", strings.Join(tables, "\t"))
	for _, c := range caseOrder {
		row := []string{c}
		for _, t := range tables {
			row = append(row, cell(cells[c][t]))
		}
		fmt.Fprintf(tw, "%s\t\n", strings.Join(row, "\t"))
	}
	tw.Flush()
	if len(others) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "case\ttarget\tresult\tchecks\t\n")
		for _, res := range others {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t\n", res.Case, res.Target, cell(res.Status), res.Checks)
		}
		tw.Flush()
	}
	for _, res := range r.Results {
		for _, l := range res.Leaks {
			fmt.Fprintf(&b, "\nLEAK  %s on %s: %s", res.Case, res.Target, l)
		}
		for _, e := range res.Errors {
			fmt.Fprintf(&b, "\nERROR %s on %s: %s", res.Case, res.Target, e)
		}
		why := "writes on a hot standby"
		if r.Citus {
			why = "not run by Citus"
		}
		for _, e := range res.NotRun {
			fmt.Fprintf(&b, "\nNOT RUN %s on %s (%s): %s", res.Case, res.Target, why, e)
		}
	}
	for _, sk := range r.Skipped {
		fmt.Fprintf(&b, "\nSKIPPED %s: %s", sk.Table, sk.Reason)
	}
	if r.Swept > 0 {
		fmt.Fprintf(&b, "\nremoved %d objects that killed earlier runs left behind", r.Swept)
	}
	c := r.Counts()
	fmt.Fprintf(&b, "\n\n%d results (%d checks): %d passed, %d leaked, %d errors, %d not applicable; %s\n",
		len(r.Results), r.Checks(), c[StatusPass], c[StatusLeak], c[StatusError], c[StatusNA], r.Duration.Round(time.Millisecond))
	_, err := io.WriteString(w, b.String())
	return err
}

func cell(s Status) string {
	switch s {
	case StatusPass:
		return "ok"
	case StatusLeak:
		return "LEAK"
	case StatusError:
		return "ERR"
	case "":
		return "-"
	}
	return string(s)
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*Report
		Counts map[Status]int `json:"counts"`
		OK     bool           `json:"ok"`
	}{r, r.Counts(), r.OK()})
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: one test suite per case group, one test case per case and
// target; a leak is a failure, an error an error, a case that does not apply is skipped.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "tenantseal isolation " + r.Database, Time: fmt.Sprintf("%.3f", r.Duration.Seconds())}
	idx := map[string]int{}
	for _, res := range r.Results {
		i, ok := idx[res.Group]
		if !ok {
			i = len(out.Suites)
			idx[res.Group] = i
			out.Suites = append(out.Suites, junitSuite{Name: "isolation." + res.Group})
		}
		s := &out.Suites[i]
		jc := junitCase{Name: res.Case + " " + res.Target, Classname: "isolation." + res.Group + "." + res.Case}
		if len(res.Notes) > 0 {
			jc.SystemOut = strings.Join(res.Notes, "\n")
		}
		switch res.Status {
		case StatusLeak:
			jc.Failure = &junitMessage{Message: "leak: " + res.Leaks[0], Type: "leak", Body: strings.Join(res.Leaks, "\n")}
			s.Failures++
		case StatusError:
			jc.Error = &junitMessage{Message: res.Errors[0], Type: "error", Body: strings.Join(res.Errors, "\n")}
			s.Errors++
		case StatusNA:
			jc.Skipped = &junitMessage{Message: "not applicable: " + strings.Join(res.Notes, "; ")}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, jc)
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
