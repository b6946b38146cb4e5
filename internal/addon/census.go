package addon

import "context"

// Census is implemented by stores that can count add-ons by state cheaply
// (one grouped query), so operators can watch provisions pile up or fail in
// /metrics without a scan per scrape. States with no add-on may be absent.
type Census interface {
	CountByState(ctx context.Context) (map[State]int64, error)
}

// LostGrants is implemented by stores that can count the add-ons that failed
// because Heroku refused their grant after an earlier exchange attempt had
// started (GrantLostReason): each is a customer's add-on lost to an answer
// that never arrived, which operators alert on (kiln_grants_lost).
type LostGrants interface {
	CountLostGrants(ctx context.Context) (int64, error)
}
