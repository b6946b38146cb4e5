package web

import "testing"

// Heroku's documented example: sha1("123:salty:567").
func TestResourceTokenVector(t *testing.T) {
	if got, want := resourceToken("123", "salty", "567"), "8bcafa70e186a8f9b85a1c93f3b6b0507748ec7a"; got != want {
		t.Fatalf("resourceToken = %s, want %s", got, want)
	}
	// sha256("123:salty:567:u1:a@b.c"), computed independently with
	// printf '123:salty:567:u1:a@b.c' | sha256sum.
	if got, want := userToken("123", "salty", "567", "u1", "a@b.c"), "368fb56fed8f4b5fed463512cc8e026f799d50766032db0454a40e28dccecea5"; got != want {
		t.Fatalf("userToken = %s, want %s", got, want)
	}
}
