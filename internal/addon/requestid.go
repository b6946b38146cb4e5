package addon

import "context"

type requestIDKey struct{}

// WithRequestID carries the id of the request being served (Heroku's
// Request-Id) in ctx, so every log line written while serving it, in any
// package, can name it and be joined with Heroku's own logs.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
