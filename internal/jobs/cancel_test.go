package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/faultkit"
	"github.com/kiln-dev/kiln/internal/jobs"
)

// TestRunChecksTheCancelChannel: a worker whose Redis user may not
// subscribe to asynq's cancellation channel stops at start and says what
// to grant, leaving no connection behind, instead of starting servers
// whose subscriber would retry, and leak a connection, every 5 s. A user
// allowed the channel starts and runs until told to stop. The Redis is
// the test's own: ACL users are the server's, not a database's.
func TestRunChecksTheCancelChannel(t *testing.T) {
	srv, err := faultkit.StartRedis(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	tests := []struct {
		name     string
		channels string // the user's channel rule
		allowed  bool
	}{
		{"no channels", "resetchannels", false},
		{"the cancel channel", "&asynq:cancel", true},
		{"every channel", "allchannels", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := "kiln" + strings.ReplaceAll(tt.name, " ", "")
			if _, err := faultkit.Command(srv.Addr(), "ACL", "SETUSER", user, "reset", "on", ">pw", "~*", "+@all", tt.channels); err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: "pw"})
			t.Cleanup(func() { rdb.Close() })
			o := jobs.ServerOptions{Concurrency: 1, GrantConcurrency: 1, KeeperConcurrency: 1, Log: testLogger(t), ShutdownTimeout: time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- jobs.NewServer(jobs.SharedRedis{Client: rdb}, nil, o).Run(ctx) }()

			if !tt.allowed {
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), "&asynq:cancel") {
						t.Fatalf("Run = %v, want a refusal that names the channel to allow", err)
					}
				case <-time.After(wait):
					t.Fatal("Run did not stop for a user refused the cancel channel")
				}
				rdb.Close()
				eventually(t, "the user's connections closed", func() bool {
					list, err := faultkit.Command(srv.Addr(), "CLIENT", "LIST")
					return err == nil && !strings.Contains(list, "user="+user+" ")
				})
				return
			}
			eventually(t, "the servers subscribed", func() bool {
				n, err := rdb.PubSubNumSub(ctx, "asynq:cancel").Result()
				return err == nil && n["asynq:cancel"] == jobs.AsynqServers
			})
			select {
			case err := <-done:
				t.Fatalf("Run stopped on its own: %v", err)
			default:
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run = %v after its context ended", err)
				}
			case <-time.After(wait):
				t.Fatal("Run did not return after its context ended")
			}
		})
	}
}
