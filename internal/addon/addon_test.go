package addon

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTransitions(t *testing.T) {
	tests := []struct {
		from, to State
		ok       bool
	}{
		{StateProvisioning, StateProvisioned, true},
		{StateProvisioning, StateFailed, true},
		{StateProvisioning, StateDeprovisioning, true},
		{StateFailed, StateProvisioning, true},
		{StateProvisioned, StateDeprovisioning, true},
		{StateDeprovisioning, StateDeprovisioned, true},
		{StateProvisioned, StateProvisioning, false},
		{StateProvisioned, StateFailed, false},
		{StateDeprovisioned, StateProvisioning, false},
		{StateDeprovisioning, StateProvisioned, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s to %s", tt.from, tt.to), func(t *testing.T) {
			a := &Addon{ID: "x", State: tt.from}
			err := a.Transition(time.Now(), tt.to, "because")
			if (err == nil) != tt.ok {
				t.Fatalf("Transition = %v, want ok=%v", err, tt.ok)
			}
			ev := a.TakeEvents()
			if tt.ok && (len(ev) != 1 || ev[0].State != tt.to || ev[0].Message != "because") {
				t.Errorf("events = %+v, want one state event to %s", ev, tt.to)
			}
			if !tt.ok && (a.State != tt.from || len(ev) != 0 || ErrorCode(err) != ECONFLICT) {
				t.Errorf("refused transition changed state to %s / recorded %d events / code %s", a.State, len(ev), ErrorCode(err))
			}
		})
	}
}

func TestConfigName(t *testing.T) {
	tests := []struct {
		prefix, suffix, want string
		ok                   bool
	}{
		{"FAST_DB", "URL", "FAST_DB_URL", true},
		{"KILN", "API_KEY", "KILN_API_KEY", true},
		{"KILN", "url", "", false},
		{"KILN", "", "", false},
		{"KILN", "A-B", "", false},
		{"9KILN", "URL", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+"_"+tt.suffix, func(t *testing.T) {
			got, err := ConfigName(tt.prefix, tt.suffix)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ConfigName = %q, %v; want %q ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	c := Catalog{"test": {Slug: "test"}, "basic": {Slug: "basic"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup("gold"); ErrorCode(err) != EINVALID || ErrorMessage(err) != `Unknown plan "gold". Available plans: basic, test.` {
		t.Errorf("Lookup(gold) = %v", err)
	}
	if err := (Catalog{"test": {Slug: "test"}}).Validate(); err == nil {
		t.Error("a catalog without basic validated")
	}
	if err := (Catalog{"test": {Slug: "test"}, "basic": {Slug: "pro"}}).Validate(); err == nil {
		t.Error("a catalog with a misfiled plan validated")
	}
}

func TestErrors(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	tests := []struct {
		name      string
		err       error
		code, msg string
		transient bool
	}{
		{"nil", nil, "", "Internal error.", false},
		{"plain", cause, EINTERNAL, "Internal error.", true},
		{"invalid", Errorf(EINVALID, "Bad plan."), EINVALID, "Bad plan.", false},
		{"wrapped unavailable", fmt.Errorf("push: %w", Wrap(EUNAVAILABLE, cause, "Heroku is down.")), EUNAVAILABLE, "Heroku is down.", true},
		{"rate limit", &Error{Code: ERATELIMIT, RetryAfter: time.Minute}, ERATELIMIT, "Internal error.", true},
		{"unauthorized", Errorf(EUNAUTHORIZED, "No."), EUNAUTHORIZED, "No.", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.code {
				t.Errorf("code = %q, want %q", got, tt.code)
			}
			if got := ErrorMessage(tt.err); got != tt.msg {
				t.Errorf("message = %q, want %q", got, tt.msg)
			}
			if got := Transient(tt.err); got != tt.transient {
				t.Errorf("transient = %v, want %v", got, tt.transient)
			}
		})
	}
	if RetryAfter(fmt.Errorf("x: %w", &Error{Code: ERATELIMIT, RetryAfter: time.Minute})) != time.Minute {
		t.Error("RetryAfter lost through wrapping")
	}
	if !errors.Is(NotFound("x"), errNoAddon) || ErrorCode(NotFound("x")) != ENOTFOUND {
		t.Error("NotFound is not an ENOTFOUND error")
	}
}

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{
		"01234567-89ab-cdef-0123-456789abcdef": true,
		"01234567-89AB-CDEF-0123-456789ABCDEF": true,
		"01234567-89ab-cdef-0123-456789abcde":  false,
		"not-a-uuid":                           false,
		"":                                     false,
	} {
		if ValidID(id) != ok {
			t.Errorf("ValidID(%q) = %v, want %v", id, !ok, ok)
		}
	}
}

func TestParseID(t *testing.T) {
	const lower = "01234567-89ab-cdef-0123-456789abcdef"
	tests := []struct {
		name, in string
		want     ID
		code     string // ParseID's; ParseExistingID's is ENOTFOUND instead of EINVALID
	}{
		{"lower case", lower, lower, ""},
		{"upper case is lower-cased", strings.ToUpper(lower), lower, ""},
		{"mixed case", "01234567-89AB-cdef-0123-456789ABCDEF", lower, ""},
		{"too short", lower[:35], "", EINVALID},
		{"not a uuid", "not-a-uuid", "", EINVALID},
		{"empty", "", "", EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseID(tt.in)
			if id != tt.want || ErrorCode(err) != tt.code {
				t.Fatalf("ParseID(%q) = %q, %v; want %q, code %q", tt.in, id, err, tt.want, tt.code)
			}
			existing, err := ParseExistingID(tt.in)
			wantCode := tt.code
			if wantCode != "" {
				wantCode = ENOTFOUND
			}
			if existing != tt.want || ErrorCode(err) != wantCode {
				t.Fatalf("ParseExistingID(%q) = %q, %v; want %q, code %q", tt.in, existing, err, tt.want, wantCode)
			}
		})
	}
	long := strings.Repeat("x", 500)
	if _, err := ParseID(long); len(ErrorMessage(err)) > 2*MaxEchoLen {
		t.Errorf("the message repeats a long value whole: %q", ErrorMessage(err))
	}
}

func TestParseCatalog(t *testing.T) {
	tests := []struct {
		name, data, err string
	}{
		{"good", `{"plans":[{"slug":"test","name":"Test","limits":{"n":1}},{"slug":"basic","name":"Basic","limits":{"n":5}}]}`, ""},
		{"misspelt key", `{"plans":[{"slug":"test","nmae":"Test"}]}`, "unknown field"},
		{"unknown limit", `{"plans":[{"slug":"test","limits":{"n":1,"m":2}},{"slug":"basic","limits":{"n":1}}]}`, "unknown limit m"},
		{"missing limit", `{"plans":[{"slug":"test","limits":{}},{"slug":"basic","limits":{"n":1}}]}`, "limits.n must be a number above 0"},
		{"duplicate", `{"plans":[{"slug":"test","limits":{"n":1}},{"slug":"test","limits":{"n":1}}]}`, "listed twice"},
		{"no slug", `{"plans":[{"name":"x","limits":{"n":1}}]}`, "has no slug"},
		{"trailing data", `{"plans":[]} {}`, "data after"},
		{"empty", `{"plans":[]}`, "no plans"},
		{"contract plans missing", `{"plans":[{"slug":"pro","limits":{"n":1}}]}`, `no "test" plan`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCatalog([]byte(tt.data), "n")
			if tt.err == "" {
				if err != nil || c["basic"].Limits["n"] != 5 {
					t.Fatalf("ParseCatalog = %v, %v", c, err)
				}
				clone := c.Clone()
				clone["basic"].Limits["n"] = 9
				if c["basic"].Limits["n"] != 5 {
					t.Error("Clone shares limits with the original")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseCatalog error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}
