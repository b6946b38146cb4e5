package addon

import (
	"context"
	"fmt"
	"maps"
	"time"
)

// Rotate rolls a provisioned add-on's credentials with overlap, as Heroku
// asks partners to: new credentials are made and pushed to Heroku at once
// (the app restarts onto them), and the old ones keep working for Grace
// (CREDENTIAL_GRACE) before a job revokes them. Each step is recorded
// before the next, so a crash or a repeat finishes the roll without
// revoking the credentials the app uses:
//  1. the current credentials are recorded as retiring, with their time;
//  2. the driver makes the new ones (outside any transaction);
//  3. the new ones are recorded as the add-on's, with a "credentials"
//     event (and a line in the app's log stream), retried with them in
//     hand and saved even if the lease was taken over meanwhile
//     (Service.giveVars);
//  4. they are pushed to Heroku; on failure a job keeps pushing.
//
// A second roll while the old credentials of a first are still in their
// grace is ECONFLICT: the driver holds two sets, not three. Drivers without
// overlap (Abilities.Roll) fall back to Service.RotateCredentials (the old
// ones die at once).
func (k *Keeper) Rotate(ctx context.Context, id ID) (*Addon, error) {
	if !k.Service.driver.Abilities().Roll {
		return k.Service.RotateCredentials(ctx, id)
	}
	var pushErr error
	err := k.Service.Exclusive(ctx, id, rotateClaimWait, func(ctx context.Context, c *Claim) error {
		a := c.Addon()
		if err := a.rotatable(); err != nil {
			return err
		}
		retireAt := k.now().Add(k.Grace)
		if _, err := k.Links.UpdateLink(ctx, id, func(l *Link) error {
			if l.RetiredVars != nil && !maps.Equal(l.RetiredVars, a.Vars) {
				return Errorf(ECONFLICT, "The previous credentials of add-on %s keep working until %s; rotate again after that.", id, l.RetireAt.UTC().Format(time.RFC3339))
			}
			l.RetiredVars, l.RetireAt = a.Vars, retireAt
			return nil
		}); err != nil {
			return err
		}
		// As in Service.RotateCredentials, the driver's roll runs to its end
		// whatever happens to the caller: new credentials the driver made
		// and nobody recorded would work, and nobody would revoke them.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rotateTimeout)
		vars, err := k.Service.driver.Roll(dctx, k.Service.resource(a))
		cancel()
		if err != nil {
			return fmt.Errorf("roll credentials: %w", err)
		}
		note := "credentials rotated"
		if k.Grace > 0 {
			note += fmt.Sprintf("; the old ones keep working until %s", retireAt.UTC().Format(time.RFC3339))
		}
		pushErr, err = k.Service.giveVars(ctx, c, "rolled credentials", vars, note)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The roll is done whatever happened to the caller meanwhile.
	ctx = context.WithoutCancel(ctx)
	if k.Grace <= 0 {
		k.enqueue(ctx, JobRetire, id)
	}
	a, err := k.Service.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return a, pushErr
}

// Retire revokes credentials whose grace has ended. It leaves them alone
// while they are still the add-on's own (a roll that crashed before
// recording its new credentials), and waits while the new ones have not
// reached Heroku yet (the app may still run on the old ones). It acts as
// the add-on's one writer: a roll still under way (its new credentials not
// yet recorded, so the retiring ones still look current) holds the add-on,
// and Retire is Busy until it is done, instead of taking that roll for one
// that never finished and forgetting credentials it was asked to revoke.
func (k *Keeper) Retire(ctx context.Context, id ID) error {
	l, err := k.Links.Link(ctx, id)
	if err != nil {
		return err
	}
	if l.RetiredVars == nil || l.RetireAt.After(k.now()) {
		return nil
	}
	return k.Service.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		l, err := k.Links.Link(ctx, id) // again, now that no roll can be under way
		if err != nil {
			return err
		}
		if l.RetiredVars == nil || l.RetireAt.After(k.now()) {
			return nil
		}
		retired := l.RetiredVars
		clear := func(note string) error {
			if _, err := k.Links.UpdateLink(ctx, id, func(l *Link) error {
				if maps.Equal(l.RetiredVars, retired) {
					l.RetiredVars, l.RetireAt = nil, time.Time{}
				}
				return nil
			}); err != nil {
				return err
			}
			if note == "" {
				return nil
			}
			_, err := c.Record(ctx, func(a *Addon, now time.Time) error {
				a.Note(now, "credentials", note)
				return nil
			})
			return err
		}
		a := c.Addon()
		switch {
		case a.State != StateProvisioned:
			return clear("") // deprovisioning destroys every credential
		case maps.Equal(retired, a.Vars):
			return clear("") // the roll never finished: these are the current ones
		case a.ConfigPushedAt.IsZero():
			return nil // the app has not been given the new ones yet
		}
		if !k.Service.driver.Abilities().Roll {
			return clear("")
		}
		if err := k.Service.driver.Revoke(ctx, k.Service.resource(a), retired); err != nil {
			return transient(fmt.Errorf("revoke old credentials: %w", err))
		}
		return clear("old credentials revoked")
	})
}

// RetireAt is when the add-on's rotated-out credentials stop working, or
// the zero time when none are waiting, for the dashboard.
func (k *Keeper) RetireAt(ctx context.Context, id ID) (time.Time, error) {
	l, err := k.Links.Link(ctx, id)
	if err != nil || l.RetiredVars == nil {
		return time.Time{}, err
	}
	return l.RetireAt, nil
}
