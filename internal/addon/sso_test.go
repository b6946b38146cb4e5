package addon

import (
	"strings"
	"testing"
)

func TestIdentity(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name, userID, email, want string
	}{
		{"both", "u-1", "dev@example.com", "dev@example.com (user u-1)"},
		{"email only", "", "dev@example.com", "dev@example.com"},
		{"user only", "u-1", "", "user u-1"},
		{"neither", "", " ", "user unknown (Heroku sent neither user_id nor email)"},
		{"control characters dropped", "u-1\n", "dev@example.com\r\nkind=forged", "dev@example.comkind=forged (user u-1)"},
		{"long values cut", "", long, long[:maxIdentity]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := identity(tt.userID, tt.email); got != tt.want {
				t.Errorf("identity(%q, %q) = %q, want %q", tt.userID, tt.email, got, tt.want)
			}
		})
	}
}
