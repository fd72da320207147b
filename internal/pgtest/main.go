package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// Main starts a server and a migrated template for a test binary, runs its tests and removes the server,
// also when the run is interrupted. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	s, err := StartServer(ctx)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Remove the container on SIGINT/SIGTERM too: no reaper runs here.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sig; ok {
			stop, c := context.WithTimeout(context.Background(), 20*time.Second)
			s.Stop(stop)
			c()
			os.Exit(130)
		}
	}()
	defer func() {
		signal.Stop(sig)
		close(sig)
		stop, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		if shared != nil && s.Container == nil {
			if err := shared.Close(stop); err != nil {
				fmt.Fprintln(os.Stderr, "pgtest: clean up:", err)
			}
		}
		if err := s.Stop(stop); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop server:", err)
		}
	}()
	c, err := NewCluster(ctx, s)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sharedMu.Lock()
	shared = c
	sharedMu.Unlock()
	return m.Run()
}
