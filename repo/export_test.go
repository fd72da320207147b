package repo

// WithDBTX returns a copy of t that runs its statements on q.
func WithDBTX[T any](t *Table[T], q DBTX) *Table[T] {
	c := *t
	c.q = q
	return &c
}
