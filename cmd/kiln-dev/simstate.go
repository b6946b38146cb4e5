package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

// The simulator plays Heroku, which does not forget add-ons when Kiln
// restarts: kiln-dev saves what its simulator holds (add-ons, plans,
// states, config and the tokens Kiln was given) when it stops, and
// restores it when it starts, so `kiln-heroku status` and Kiln's calls to
// the Platform API carry on across a restart of make dev.

// simFile is where the simulator's state is kept (private: it holds tokens).
func (d *dev) simFile() string { return filepath.Join(d.dir, "sim.json") }

// loadSim restores a saved state into sim and reports how many add-ons it
// held. No file is no state.
func loadSim(sim *herokusim.Sim, path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var snap herokusim.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return 0, fmt.Errorf("%s is not a saved simulator state (delete it to start afresh): %w", path, err)
	}
	sim.Restore(snap)
	return len(snap.Addons), nil
}

// saveSim writes sim's state to path atomically, readable by the owner only.
func saveSim(sim *herokusim.Sim, path string) error {
	b, err := json.MarshalIndent(sim.Snapshot(), "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
