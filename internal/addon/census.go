package addon

import "context"

// Census is implemented by stores that can count add-ons by state cheaply
// (one grouped query), so operators can watch provisions pile up or fail in
// /metrics without a scan per scrape. States with no add-on may be absent.
type Census interface {
	CountByState(ctx context.Context) (map[State]int64, error)
}
