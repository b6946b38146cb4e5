package addon

import (
	"strings"
	"testing"
	"unicode/utf8"
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
		// é is two bytes, straddling the limit: the cut must not split it
		// (invalid UTF-8 cannot be stored, and the sign-in would fail).
		{"cut on a character boundary", "", strings.Repeat("a", maxIdentity-1) + "é@example.com", strings.Repeat("a", maxIdentity-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := identity(tt.userID, tt.email)
			if got != tt.want {
				t.Errorf("identity(%q, %q) = %q, want %q", tt.userID, tt.email, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("identity(%q, %q) = %q is not valid UTF-8", tt.userID, tt.email, got)
			}
		})
	}
}
