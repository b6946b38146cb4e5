// Package mock holds in-memory stand-ins for the interfaces the add-on
// domain depends on, so the Service's branches can be unit tested without
// Postgres, Redis or Heroku's simulator (those tests stay, beside these).
//
// Driver, Platform, Queue, Tenants, Nonces, and the keeper's Watcher and
// LogWriter are function-field mocks in the style of benbjohnson/wtf's
// mock package: each method calls the field
// named after it (CreateFn for Create), so a test says exactly what a
// collaborator answers and records what it was asked. A method whose field
// is nil panics, naming the call: an unexpected call fails the test loudly
// instead of answering with a zero value the test never chose.
//
// Store and Links are different: the service's correctness rests on the
// store's contract (duplicates decided by the id, updates that save
// nothing on error, leases and fences), so a fake answering call by call
// would let a test pass against behaviour no real store has. Store and
// Links implement that contract in memory, and StoreContract and
// LinksContract check it, against these and against the Postgres store
// (internal/postgres/contract_test.go).
package mock

import "fmt"

// unset is the panic of a mock method whose function field is nil.
func unset(method string) string {
	return fmt.Sprintf("mock: unexpected call to %s (its %sFn is not set)", method, method)
}
