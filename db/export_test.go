package db

// Operation is operation, for tests.
var Operation = operation

// ParseLSN is parseLSN, for tests.
var ParseLSN = parseLSN

// Direct reports whether p's scoped statements take the direct send path.
func Direct(p *Pool) bool { return p.direct }

// Enter reports whether p's batches set the context with tenantseal.c_enter.
func Enter(p *Pool) bool { return p.enter.Load() }

// DirectStatementsMax is directStatementsMax, for tests.
const DirectStatementsMax = directStatementsMax
