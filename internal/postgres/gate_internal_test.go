package postgres

import (
	"context"
	"errors"
	"testing"
)

func TestGate(t *testing.T) {
	g := make(gate, 1)
	ctx := context.Background()
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.enter(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("enter on a full gate with a cancelled context = %v, want context.Canceled", err)
	}
	g.leave()
	if err := g.enter(cancelled); err != nil || len(g) != 1 {
		t.Fatalf("a free slot was refused: %v", err)
	}
	var none gate
	if err := none.enter(cancelled); err != nil {
		t.Errorf("a nil gate refused: %v", err)
	}
	none.leave() // must not block
}
