package db

// Operation is operation, for tests.
var Operation = operation

// ParseLSN is parseLSN, for tests.
var ParseLSN = parseLSN
