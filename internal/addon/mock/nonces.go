package mock

import (
	"context"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Nonces = (*Nonces)(nil)

// Nonces is the single-use value store of single sign-on, answering
// through ClaimFn, so a test of a sign-in can replay a token or make the
// store fail.
type Nonces struct {
	ClaimFn func(ctx context.Context, key string, until time.Time) (bool, error)
}

// Claim calls ClaimFn.
func (n *Nonces) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	if n.ClaimFn == nil {
		panic(unset("Claim"))
	}
	return n.ClaimFn(ctx, key, until)
}
