package postgres

import (
	"context"

	"github.com/kiln-dev/kiln/internal/addon"
)

// CountByState counts add-ons per state with one grouped query, for the
// operators' /metrics. Deprovisioned add-ons are counted too: their rows
// stay for the audit trail.
func (db *DB) CountByState(ctx context.Context) (map[addon.State]int64, error) {
	rows, err := db.gorm.WithContext(ctx).Raw("SELECT state, count(*) FROM addons GROUP BY state").Rows()
	if err != nil {
		return nil, dbError(err, "")
	}
	defer rows.Close()
	out := make(map[addon.State]int64)
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, dbError(err, "")
		}
		out[addon.State(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err, "")
	}
	return out, nil
}

// CountLostGrants counts failed add-ons whose grant was lost after an
// exchange attempt had started.
func (db *DB) CountLostGrants(ctx context.Context) (int64, error) {
	var n int64
	err := db.gorm.WithContext(ctx).
		Raw("SELECT count(*) FROM addons WHERE state = 'failed' AND reason = $1", addon.GrantLostReason).
		Row().Scan(&n)
	if err != nil {
		return 0, dbError(err, "")
	}
	return n, nil
}
