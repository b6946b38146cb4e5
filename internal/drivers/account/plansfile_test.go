package account_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/drivers/account"
)

func TestLoadCatalogFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"plans":[{"slug":"test","name":"T","limits":{"requests_per_month":10,"requests_per_second":1}},
		{"slug":"basic","name":"B","limits":{"requests_per_month":100,"requests_per_second":5}}]}`), 0o600)
	c, err := account.LoadCatalog(good)
	if err != nil {
		t.Fatal(err)
	}
	d := account.NewWithCatalog(nil, "https://kiln.example.com", c)
	if p, err := d.Catalog().Lookup("basic"); err != nil || p.Limits[account.LimitRequestsPerSecond] != 5 {
		t.Errorf("basic = %+v, %v", p, err)
	}
	if _, err := d.Catalog().Lookup("pro"); err == nil {
		t.Error("the embedded catalog's pro plan is still sold")
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"plans":[{"slug":"test","name":"T","limits":{"requests_per_month":10}},{"slug":"basic","name":"B"}]}`), 0o600)
	if _, err := account.LoadCatalog(bad); err == nil || !strings.Contains(err.Error(), "requests_per_second") || !strings.Contains(err.Error(), bad) {
		t.Errorf("a plan without its rate: %v", err)
	}
}
