package redisconn

import "testing"

// TestSentinelCredentials: a Sentinel URL's user and password are for the
// Redis servers (what holds the data); the Sentinels get theirs only from
// sentinel_username and sentinel_password. asynq's own parser does the
// opposite, which is why Kiln does not use it.
func TestSentinelCredentials(t *testing.T) {
	tests := []struct {
		name, url                      string
		user, password                 string
		sentinelUser, sentinelPassword string
	}{
		{"the URL's password", "redis+sentinel://:pw@s1/kiln", "", "pw", "", ""},
		{"user and password", "redis+sentinel://kiln:pw@s1/kiln", "kiln", "pw", "", ""},
		{"the Sentinels' own", "redis+sentinel://:pw@s1/kiln?sentinel_username=watch&sentinel_password=spw", "", "pw", "watch", "spw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.url, false)
			if err != nil {
				t.Fatal(err)
			}
			f := c.failover
			if f == nil {
				t.Fatal("not a Sentinel connection")
			}
			if f.Username != tt.user || f.Password != tt.password || f.SentinelUsername != tt.sentinelUser || f.SentinelPassword != tt.sentinelPassword {
				t.Errorf("servers %q/%q, Sentinels %q/%q; want %q/%q and %q/%q",
					f.Username, f.Password, f.SentinelUsername, f.SentinelPassword,
					tt.user, tt.password, tt.sentinelUser, tt.sentinelPassword)
			}
		})
	}
}
