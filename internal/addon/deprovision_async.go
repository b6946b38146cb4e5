package addon

import (
	"context"
	"fmt"
	"strings"
)

// DeprovisionJob is the cleanup job of a deprovisioning add-on. Without
// asynchronous deprovisioning it is the pipeline's own job. With it
// (ASYNC_DEPROVISION, enabled per add-on by Heroku), Heroku answered 202 to
// its DELETE and waits to be told: the resource is destroyed first, then
// POST /addons/{id}/actions/deprovision is called with the add-on's token
// (Heroku detaches the add-on and revokes the token only then), then the
// add-on is recorded deprovisioned. Each step is recorded, so a retry after
// a crash repeats none that finished.
//
// Heroku is told only when Heroku asked: an add-on removed on Heroku, or
// one an operator forced out, is not marked (see ForceDeprovision).
func (k *Keeper) DeprovisionJob(ctx context.Context, id ID) error {
	if !k.AsyncDeprovision {
		return k.Service.DeprovisionJob(ctx, id)
	}
	a, err := k.Service.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if a.State != StateDeprovisioning || a.Tokens == nil || !herokuAsked(a.Reason) {
		return k.Service.DeprovisionJob(ctx, id)
	}
	l, err := k.Links.Link(ctx, id)
	if err != nil {
		return err
	}
	if l.MarkedDeprovisionedAt.IsZero() {
		err := k.Service.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
			a := c.Addon()
			if a.State != StateDeprovisioning || a.Tokens == nil {
				return nil
			}
			// The resource first: Heroku must hear "done" only when it is.
			// DeprovisionJob below destroys again, which drivers make a no-op.
			if err := k.Service.driver.Destroy(ctx, k.Service.resource(a)); err != nil {
				return transient(fmt.Errorf("destroy resource: %w", err))
			}
			err := k.Service.withToken(ctx, c, func(token string) error {
				return k.Service.platform.MarkDeprovisioned(ctx, token, id)
			})
			switch {
			case err == nil:
			case Transient(err):
				return fmt.Errorf("mark deprovisioned on Heroku: %w", err)
			default:
				// Gone, unknown or a refused token: Heroku has finished with
				// this add-on already (a previous attempt's call succeeded
				// before a crash, after which Heroku revoked the token), or
				// will not hear from Kiln again. Either way the cleanup is done.
				k.log().WarnContext(ctx, "actions/deprovision refused; recording the deprovision anyway", "addon", id, "err", err)
			}
			_, err = k.Links.UpdateLink(ctx, id, func(l *Link) error {
				if l.MarkedDeprovisionedAt.IsZero() {
					l.MarkedDeprovisionedAt = k.now()
				}
				return nil
			})
			return err
		})
		if err != nil {
			return err
		}
	}
	return k.Service.DeprovisionJob(ctx, id)
}

// herokuAsked reports whether a deprovision reason is Heroku's own DELETE.
func herokuAsked(reason string) bool {
	return reason != ReasonRemovedOnHeroku && !strings.HasPrefix(reason, ForcedPrefix)
}

// TellsHeroku reports whether Heroku's DELETE of this add-on is answered
// 202 and finished with actions/deprovision: asynchronous deprovisioning is
// on and Kiln holds the add-on's token (without one, Heroku could never be
// told, so the answer is the synchronous 204). An add-on already being
// deprovisioned for another reason (an operator forced it out, or it was
// removed on Heroku) is not: its job does not call actions/deprovision
// (see DeprovisionJob), so Heroku gets the synchronous 204 rather than a
// 202 whose "done" would never come.
func (k *Keeper) TellsHeroku(ctx context.Context, id ID) bool {
	if !k.AsyncDeprovision {
		return false
	}
	a, err := k.Service.store.Get(ctx, id)
	return err == nil && a.Tokens != nil && (a.State != StateDeprovisioning || herokuAsked(a.Reason))
}
