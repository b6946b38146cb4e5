package mock

import (
	"context"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Platform = (*Platform)(nil)

// Platform is Heroku (id.heroku.com and the Platform API) as the domain
// sees it, answering through its function fields: a test makes Heroku
// refuse a grant, reject a token or be down at the call it chooses.
type Platform struct {
	ExchangeGrantFn     func(ctx context.Context, code string) (addon.Tokens, error)
	RefreshTokensFn     func(ctx context.Context, refreshToken string) (addon.Tokens, error)
	SetConfigFn         func(ctx context.Context, accessToken string, id addon.ID, vars map[string]*string) error
	MarkProvisionedFn   func(ctx context.Context, accessToken string, id addon.ID) error
	MarkDeprovisionedFn func(ctx context.Context, accessToken string, id addon.ID) error
}

// ExchangeGrant calls ExchangeGrantFn.
func (p *Platform) ExchangeGrant(ctx context.Context, code string) (addon.Tokens, error) {
	if p.ExchangeGrantFn == nil {
		panic(unset("ExchangeGrant"))
	}
	return p.ExchangeGrantFn(ctx, code)
}

// RefreshTokens calls RefreshTokensFn.
func (p *Platform) RefreshTokens(ctx context.Context, refreshToken string) (addon.Tokens, error) {
	if p.RefreshTokensFn == nil {
		panic(unset("RefreshTokens"))
	}
	return p.RefreshTokensFn(ctx, refreshToken)
}

// SetConfig calls SetConfigFn.
func (p *Platform) SetConfig(ctx context.Context, accessToken string, id addon.ID, vars map[string]*string) error {
	if p.SetConfigFn == nil {
		panic(unset("SetConfig"))
	}
	return p.SetConfigFn(ctx, accessToken, id, vars)
}

// MarkProvisioned calls MarkProvisionedFn.
func (p *Platform) MarkProvisioned(ctx context.Context, accessToken string, id addon.ID) error {
	if p.MarkProvisionedFn == nil {
		panic(unset("MarkProvisioned"))
	}
	return p.MarkProvisionedFn(ctx, accessToken, id)
}

// MarkDeprovisioned calls MarkDeprovisionedFn.
func (p *Platform) MarkDeprovisioned(ctx context.Context, accessToken string, id addon.ID) error {
	if p.MarkDeprovisionedFn == nil {
		panic(unset("MarkDeprovisioned"))
	}
	return p.MarkDeprovisionedFn(ctx, accessToken, id)
}
