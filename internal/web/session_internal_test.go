package web

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
)

func sessionKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

// issued seals a session for id at the given time and returns its cookie.
func issued(tb testing.TB, ss *sessions, id addon.ID, at time.Time) *http.Cookie {
	tb.Helper()
	e := echo.New()
	rec := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodPost, "/sso/login", nil), rec)
	if err := ss.issue(c, session{Resource: id, UserID: "u"}, at); err != nil {
		tb.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		tb.Fatalf("issue set %d cookies", len(cookies))
	}
	return cookies[0]
}

// opened opens the cookie for id at the given time.
func opened(ss *sessions, ck *http.Cookie, id addon.ID, at time.Time) (*session, sessionFailure) {
	req := httptest.NewRequest(http.MethodGet, "/dashboard/resources/"+string(id), nil)
	req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	return ss.open(echo.New().NewContext(req, httptest.NewRecorder()), id, at)
}

func TestSessions(t *testing.T) {
	oldKey, newKey := sessionKey(t), sessionKey(t)
	const id addon.ID = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
	now := time.Now()
	mk := func(keys ...[]byte) *sessions {
		ss, err := newSessions(keys, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	byOld := issued(t, mk(oldKey), id, now)

	tests := []struct {
		name string
		ss   *sessions
		at   time.Time
		id   addon.ID
		want sessionFailure
	}{
		{"same key", mk(oldKey), now, id, 0},
		{"key rotated in: old key kept second", mk(newKey, oldKey), now, id, 0},
		{"old key removed", mk(newKey), now, id, sessionUnreadable},
		{"no keys", mk(), now, id, sessionUnreadable},
		{"just before expiry", mk(oldKey), now.Add(30*time.Minute - time.Second), id, 0},
		{"expired", mk(oldKey), now.Add(30 * time.Minute), id, sessionExpired},
		{"another add-on", mk(oldKey), now, "00000000-0000-4000-8000-000000000000", sessionOtherAddon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, why := opened(tt.ss, byOld, tt.id, tt.at)
			if why != tt.want {
				t.Fatalf("failure = %d, want %d", why, tt.want)
			}
			if (s != nil) != (tt.want == 0) {
				t.Fatalf("session = %+v with failure %d", s, why)
			}
			if s != nil && (s.Resource != id || s.UserID != "u" || len(s.CSRF) < 40) {
				t.Fatalf("session = %+v", s)
			}
		})
	}

	t.Run("the cookie hides its content", func(t *testing.T) {
		if bytes.Contains([]byte(byOld.Value), []byte(id[:8])) {
			t.Fatalf("the cookie shows the add-on id")
		}
	})
	t.Run("session keys are not the encryption keys", func(t *testing.T) {
		// A cookie sealed directly with ENCRYPTION_KEY (as database columns
		// are) must not open as a session: the derivation separates them.
		raw := mk(oldKey)
		direct := &sessions{ttl: time.Hour}
		var err error
		if direct.keys, err = newRing(oldKey); err != nil {
			t.Fatal(err)
		}
		ck := issued(t, direct, id, now)
		if _, why := opened(raw, ck, id, now); why != sessionUnreadable {
			t.Fatalf("a cookie sealed with the raw key opened (failure %d)", why)
		}
	})
}

func newRing(key []byte) (*secret.Keyring, error) { return secret.New([][]byte{key}) }
