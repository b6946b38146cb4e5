package redisconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kiln-dev/kiln/internal/faultkit"
	"github.com/kiln-dev/kiln/internal/redisconn"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, url string
		sentinel  bool
		want      string // String()
		wantErr   string
	}{
		{"plain", "redis://127.0.0.1:6379/2", false, "redis addr=127.0.0.1:6379 db=2 tls=false", ""},
		{"heroku tls", "rediss://:pw@ec2.example.com:25061", false, "redis addr=ec2.example.com:25061 db=0 tls=true", ""},
		{"sentinel plus", "redis+sentinel://:pw@s1:26379,s2:26380,s3/kiln/3", true, "sentinel master=kiln sentinels=s1:26379,s2:26380,s3:26379 db=3 tls=false", ""},
		{"asynq form", "redis-sentinel://s1:1,s2:2?master=mymaster", true, "sentinel master=mymaster sentinels=s1:1,s2:2 db=0 tls=false", ""},
		{"go-redis option and db option", "redis+sentinel://s1/?master_name=m&db=4", true, "sentinel master=m sentinels=s1:26379 db=4 tls=false", ""},
		{"tls", "rediss+sentinel://s1:26379/kiln", true, "sentinel master=kiln sentinels=s1:26379 db=0 tls=true", ""},
		{"ipv6", "redis+sentinel://[::1]:26379,[::1]/kiln", true, "sentinel master=kiln sentinels=[::1]:26379,[::1]:26379 db=0 tls=false", ""},
		{"no master", "redis+sentinel://s1:26379", true, "", "no master name"},
		{"no sentinels", "redis+sentinel:///kiln", true, "", "no Sentinel addresses"},
		{"bad db", "redis+sentinel://s1/kiln/x", true, "", "database number"},
		{"bad port", "redis+sentinel://s1:99999/kiln", true, "", "port"},
		{"unknown option", "redis+sentinel://s1/kiln?pool=3", true, "", "unknown option"},
		{"too deep", "redis+sentinel://s1/kiln/1/2", true, "", "path"},
		{"other scheme", "http://x", false, "", "want redis://"},
		{"password kept out of errors", "redis://:sekrit@h:1/notanumber", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redisconn.IsSentinel(tt.url); got != tt.sentinel {
				t.Errorf("IsSentinel = %v", got)
			}
			c, err := redisconn.Parse(tt.url, false)
			if tt.name == "password kept out of errors" {
				if err == nil || strings.Contains(err.Error(), "sekrit") {
					t.Fatalf("err = %v, want an error without the password", err)
				}
				return
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.String() != tt.want || c.Sentinel() != tt.sentinel {
				t.Errorf("got %s (sentinel %v), want %s", c, c.Sentinel(), tt.want)
			}
		})
	}
}

// TestSentinelFailover runs a real primary, replica and three Sentinels,
// SIGKILLs the primary, and checks that the shared go-redis client, and
// asynq on it, find the promoted replica through the URL alone.
func TestSentinelFailover(t *testing.T) {
	g, err := faultkit.StartSentinelGroup(t.TempDir(), "kiln", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	c, err := redisconn.Parse(g.URL(0), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rdb := c.Pooled(4) // as a process shares it
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// asynq on the shared client, as Kiln's processes run it
	// (jobs.SharedRedis): no pool of its own.
	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(asynq.NewTask("before", nil)); err != nil {
		t.Fatal(err)
	}
	// The writes must reach the replica before the primary dies. WAIT
	// answers once the replica has acknowledged everything the primary
	// had taken when it ran, the task included; one pipeline keeps the
	// write and the WAIT on one connection.
	pipe := rdb.Pipeline()
	pipe.Set(ctx, "k", "before", 0)
	acked := pipe.Do(ctx, "WAIT", 1, 10_000)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := acked.Int(); err != nil || n < 1 {
		t.Fatalf("WAIT = %d, %v; want the replica to have the writes", n, err)
	}
	old, now, err := g.Failover(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("primary %s killed, %s promoted", old, now)
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := rdb.Set(ctx, "k", "after", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("go-redis did not follow the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := faultkit.Command(now, "PING"); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := client.Enqueue(asynq.NewTask("after", nil))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("asynq did not follow the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	info, err := insp.GetQueueInfo("default")
	if err != nil || info.Pending != 2 {
		t.Fatalf("queue after failover: %+v, %v; want both tasks pending on the new primary", info, err)
	}
	if err := g.Rejoin(); err != nil {
		t.Fatal(err)
	}
}
