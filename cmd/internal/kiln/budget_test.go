package kiln

import "testing"

// TestBudget: redis_max is every Redis connection the process can open,
// including a client made beside the shared pool, so operators adding up
// dynos against a plan's limit are not short.
func TestBudget(t *testing.T) {
	tests := []struct {
		name                       string
		pool, subscriptions, extra int
		wantMax                    int
	}{
		{"web", 6, 0, 0, 6},
		{"worker", 8, 2, 0, 10},
		{"worker with the admin guard", 8, 2, 2, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]any{}
			args := budget(5, tt.pool, tt.subscriptions, tt.extra)
			for i := 0; i+1 < len(args); i += 2 {
				got[args[i].(string)] = args[i+1]
			}
			if got["redis_max"] != tt.wantMax || got["redis_extra"] != tt.extra {
				t.Errorf("budget = %v, want redis_max=%d redis_extra=%d", got, tt.wantMax, tt.extra)
			}
		})
	}
}
