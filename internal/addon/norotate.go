package addon

import (
	"errors"
	"fmt"
)

// ErrCannotRotate is the cause inside the error a driver returns when the
// resource has no credentials it can replace although the driver said it
// could rotate: its backing service answers that it does not (the http
// driver's 404 or 501). Callers tell it from a failed rotation with
// errors.Is; its code is EUNSUPPORTED, so Heroku's and the operators'
// callers see a refusal, not an outage.
var ErrCannotRotate = errors.New("the resource cannot rotate credentials")

// CannotRotate builds that error with a message callers can show.
func CannotRotate(format string, args ...any) *Error {
	return &Error{Code: EUNSUPPORTED, Message: fmt.Sprintf(format, args...), Err: ErrCannotRotate}
}
