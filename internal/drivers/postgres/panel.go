package postgres

import (
	"context"
	"fmt"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Panel tells the customer's dashboard how full the database is and how
// many of its connections are in use, against the limits in force, so a
// customer can see a plan is too small before the limits bite. It reads
// Stats, which is a few catalog lookups.
func (d *Driver) Panel(ctx context.Context, r addon.Resource) ([]addon.PanelField, error) {
	s, err := d.Stats(ctx, r)
	if err != nil {
		return nil, err
	}
	n, err := namesFor(r.ID)
	if err != nil {
		return nil, err
	}
	size := humanBytes(s.SizeBytes)
	if s.SizeLimitBytes > 0 {
		size = fmt.Sprintf("%s of %s (%d%%)", size, humanBytes(s.SizeLimitBytes), percent(s.SizeBytes, s.SizeLimitBytes))
	}
	conns := fmt.Sprintf("%d", s.Connections)
	if s.ConnectionLimit >= 0 {
		conns = fmt.Sprintf("%d of %d", s.Connections, s.ConnectionLimit)
	}
	return []addon.PanelField{
		{Label: "Database", Value: n.db},
		{Label: "Size", Value: size},
		{Label: "Connections", Value: conns},
		{Label: "Limits set for plan", Value: s.Plan},
	}, nil
}

// humanBytes writes a size with a binary unit, one decimal: "12.3 MB".
func humanBytes(b int64) string {
	const unit = 1 << 10
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(b)/float64(div), "KMGTPE"[exp])
}

// percent is how much of limit used is, rounded down, at most 999.
func percent(used, limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	return min(used*100/limit, 999)
}
