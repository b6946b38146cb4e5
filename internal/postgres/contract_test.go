package postgres_test

import (
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/addon/mock"
)

// TestStoreContract runs the contract the domain's unit tests rely on (see
// mock.StoreContract) against the real store, so the in-memory store the
// unit tests use cannot drift from it unnoticed.
func TestStoreContract(t *testing.T) {
	mock.StoreContract(t, func(t *testing.T) addon.Store {
		db, _ := newStore(t)
		return db
	})
}

// TestLinksContract does the same for the Links (mock.LinksContract).
func TestLinksContract(t *testing.T) {
	mock.LinksContract(t, func(t *testing.T) (addon.Store, addon.LinkStore) {
		db, _ := newStore(t)
		return db, db
	})
}
