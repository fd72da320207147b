package db

// Operation is operation, for tests.
var Operation = operation
