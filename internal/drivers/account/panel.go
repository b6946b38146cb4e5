package account

import (
	"context"
	"strconv"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Panel tells the customer's dashboard about the account: its name (the
// user name of the URL), when its API key was last used (so a customer can
// see whether a leaked key is in use before rotating it) and the limits of
// its plan. It never shows the key.
func (d *Driver) Panel(ctx context.Context, r addon.Resource) ([]addon.PanelField, error) {
	a, err := d.Account(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	lastUsed := "never"
	if !a.LastUsedAt.IsZero() {
		lastUsed = a.LastUsedAt.UTC().Format(panelTime)
	}
	fields := []addon.PanelField{
		{Label: "Account", Value: a.Name},
		{Label: "API key last used", Value: lastUsed},
		{Label: "Account created", Value: a.CreatedAt.UTC().Format(panelTime)},
	}
	if n, ok := r.Plan.Limits[LimitRequestsPerMonth]; ok {
		fields = append(fields, addon.PanelField{Label: "Requests per month", Value: grouped(n)})
	}
	if n, ok := r.Plan.Limits[LimitRequestsPerSecond]; ok {
		fields = append(fields, addon.PanelField{Label: "Requests per second", Value: grouped(n)})
	}
	return fields, nil
}

// panelTime is how the panel writes times: to the minute, in UTC, which is
// what Heroku's dashboard uses too.
const panelTime = "2006-01-02 15:04 UTC"

// grouped writes n with thousands separators: 10,000,000.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
