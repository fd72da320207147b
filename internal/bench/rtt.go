package bench

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// roundTrip is the median time of an empty statement on one connection of dsn: one round trip to the
// server and back, which every variant pays at least once per operation.
func roundTrip(ctx context.Context, dsn string) (time.Duration, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	const warm, n = 200, 2000
	ds := make([]time.Duration, 0, n)
	for i := range warm + n {
		t0 := time.Now()
		if err := c.PgConn().Exec(ctx, ";").Close(); err != nil {
			return 0, err
		}
		if i >= warm {
			ds = append(ds, time.Since(t0))
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
