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
		name    string
		rules   []string // the user's ACL rules beyond keys and commands
		allowed bool
		refusal string // what the refusal names
	}{
		{"no channels", []string{"+@all", "resetchannels"}, false, "&asynq:cancel"},
		{"no SUBSCRIBE", []string{"+@all", "-subscribe", "allchannels"}, false, "check the user's ACL"},
		{"the cancel channel", []string{"+@all", "&asynq:cancel"}, true, ""},
		{"every channel", []string{"+@all", "allchannels"}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := "kiln" + strings.ReplaceAll(tt.name, " ", "")
			if _, err := faultkit.Command(srv.Addr(), append([]string{"ACL", "SETUSER", user, "reset", "on", ">pw", "~*"}, tt.rules...)...); err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: "pw"})
			t.Cleanup(func() { rdb.Close() })
			o := jobs.ServerOptions{Concurrency: 1, GrantConcurrency: 1, KeeperConcurrency: 1, Log: testLogger(t), ShutdownTimeout: time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			done, stopped := make(chan error, 1), make(chan struct{})
			go func() {
				done <- jobs.NewServer(jobs.SharedRedis{Client: rdb}, nil, o).Run(ctx)
				close(stopped)
			}()
			// Stopped before the client closes (cleanups run last first):
			// asynq's servers must not outlive their Redis client.
			t.Cleanup(func() {
				cancel()
				select {
				case <-stopped:
				case <-time.After(wait):
					t.Error("Run did not return after its context ended")
				}
			})

			if !tt.allowed {
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), tt.refusal) {
						t.Fatalf("Run = %v, want a refusal saying %q", err, tt.refusal)
					}
				case <-time.After(wait):
					t.Fatal("Run did not stop for a user refused the cancel channel")
				}
				// The check's own subscription is closed: the client, still
				// open, holds no connection (it sent nothing else).
				eventually(t, "the check's connection closed", func() bool {
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
