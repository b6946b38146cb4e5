package jobs

import (
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestDecode: a job's payload is the edge where its add-on id enters Kiln;
// it is parsed there (lower-cased), and anything else is refused.
func TestDecode(t *testing.T) {
	const id = "01234567-89ab-cdef-0123-456789abcdef"
	tests := []struct {
		name, payload string
		want          addon.ID
		ok            bool
	}{
		{"as enqueued", `{"addon_id":"` + id + `"}`, id, true},
		{"upper case", `{"addon_id":"01234567-89AB-CDEF-0123-456789ABCDEF"}`, id, true},
		{"not a uuid", `{"addon_id":"not-a-uuid"}`, "", false},
		{"no id", `{}`, "", false},
		{"not JSON", `addon_id=` + id, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode([]byte(tt.payload))
			if got != tt.want || (err == nil) != tt.ok {
				t.Errorf("decode(%s) = %q, %v; want %q, ok %v", tt.payload, got, err, tt.want, tt.ok)
			}
		})
	}
}
