package postgres

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
)

// TestStatementsMatchValues pins the hand-numbered parameters of the hot
// statements to the values appendValues gives, so a column added to one
// list and not the others fails here rather than writing a value into the
// wrong column.
func TestStatementsMatchValues(t *testing.T) {
	ring, err := secret.New([][]byte{make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	db := &DB{keys: ring}
	at := time.Date(2026, 3, 3, 18, 0, 0, 0, time.UTC)
	full := &addon.Addon{
		ID: "0d0e0f00-0000-4000-8000-000000000000", Options: map[string]string{"a": "b"}, Vars: addon.Vars{"URL": "x"},
		LogInputURL: "https://logs.example", LogDrainToken: "d.token",
		Grant:  &addon.Grant{Code: "code", ExpiresAt: at},
		Tokens: &addon.Tokens{Access: "a", Refresh: "r", ExpiresAt: at, UserID: "u"},
	}
	for _, a := range []*addon.Addon{{ID: full.ID}, full} {
		values, err := db.appendValues(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		if len(values) != addonWriteCount {
			t.Fatalf("appendValues gives %d values, addonWriteCount is %d", len(values), addonWriteCount)
		}
	}
	if n := len(strings.Split(addonWrites, ",")); n != addonWriteCount {
		t.Fatalf("addonWrites names %d columns, addonWriteCount is %d", n, addonWriteCount)
	}
	tests := []struct {
		name, sql string
		params    int // what the caller passes
	}{
		{"insertAddon", insertAddon, 2 + addonWriteCount + 4}, // id, created_at, the values, the first event
		{"updateAddon", updateAddon, 1 + addonWriteCount + 4}, // id, the values, the first event
		{"selectAddon", selectAddonForUpdate, 1},              // id
		{"claimAddon", claimAddon, 3},                         // id, owner, ttl
		{"insertEvent", insertEvent, len(eventArgs("", addon.Event{}))},
	}
	param := regexp.MustCompile(`\$(\d+)`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.ContainsAny(tt.sql, "?@") {
				t.Errorf("%s holds '?' or '@', which GORM reads as placeholders", tt.name)
			}
			seen := map[int]bool{}
			for _, m := range param.FindAllStringSubmatch(tt.sql, -1) {
				n, _ := strconv.Atoi(m[1])
				seen[n] = true
			}
			for n := 1; n <= tt.params; n++ {
				if !seen[n] {
					t.Errorf("%s does not use $%d", tt.name, n)
				}
			}
			if len(seen) != tt.params {
				t.Errorf("%s uses %d parameters, its caller passes %d", tt.name, len(seen), tt.params)
			}
		})
	}
}
