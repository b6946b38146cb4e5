package mock

import (
	"context"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Nonces = (*Nonces)(nil)

// Nonces is the single-use value store of single sign-on, answering
// through ClaimFn and UnclaimFn, so a test of a sign-in can replay a
// token, make the store fail, or see which claims were given back.
type Nonces struct {
	ClaimFn   func(ctx context.Context, key string, until time.Time) (bool, error)
	UnclaimFn func(ctx context.Context, key string) error
}

// Claim calls ClaimFn.
func (n *Nonces) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	if n.ClaimFn == nil {
		panic(unset("Claim"))
	}
	return n.ClaimFn(ctx, key, until)
}

// Unclaim calls UnclaimFn.
func (n *Nonces) Unclaim(ctx context.Context, key string) error {
	if n.UnclaimFn == nil {
		panic(unset("Unclaim"))
	}
	return n.UnclaimFn(ctx, key)
}
