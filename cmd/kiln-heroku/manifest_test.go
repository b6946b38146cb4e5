package main

import (
	"maps"
	"slices"
	"testing"

	"github.com/kiln-dev/kiln/internal/config"
)

// TestDriversFollowConfig holds kiln-heroku's copy of the driver names to
// the configuration's list, which kiln-heroku does not import so as not to
// link the drivers.
func TestDriversFollowConfig(t *testing.T) {
	if got, want := slices.Sorted(maps.Keys(driverVars)), slices.Sorted(slices.Values(config.Drivers)); !slices.Equal(got, want) {
		t.Errorf("driverVars names %v, config.Drivers %v", got, want)
	}
	if driverChoice != config.DriverChoice() {
		t.Errorf("driverChoice = %q, config.DriverChoice() = %q", driverChoice, config.DriverChoice())
	}
	if defaultDriver != config.Drivers[0] {
		t.Errorf("defaultDriver = %q, config's default is %q", defaultDriver, config.Drivers[0])
	}
}
