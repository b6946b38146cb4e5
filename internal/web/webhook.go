package web

import (
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/kiln-dev/kiln/internal/addon"
)

// webhook handles POST /heroku/webhooks: an add-on webhook delivery from
// Heroku. The add-on is named in the subscription URL (?addon_id=), so its
// secret is found before the body is read as JSON; the signature
// (Heroku-Webhook-Hmac-SHA256) is checked in constant time and a wrong one
// is 401 with nothing changed. The work is a couple of database writes, so
// Heroku gets its 2xx fast; a repeated event is acknowledged and skipped.
func (s *server) webhook(c echo.Context) error {
	if s.keeper == nil || s.keeper.WebhookURL == "" {
		return addon.Errorf(addon.ENOTFOUND, "Add-on webhooks are turned off (HEROKU_WEBHOOKS=false).")
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return addon.Errorf(addon.ETOOLARGE, "The webhook body is too large.")
	}
	id, err := addon.ParseID(c.QueryParam("addon_id"))
	if err != nil {
		s.log.Warn("webhook refused: bad signature", "request_id", requestIDOf(c), "addon", c.QueryParam("addon_id"))
		return addon.WebhookRefused()
	}
	if err := s.keeper.ReceiveWebhook(c.Request().Context(), id, body, c.Request().Header.Get(addon.WebhookSignatureHeader)); err != nil {
		if addon.ErrorCode(err) == addon.EUNAUTHORIZED {
			s.log.Warn("webhook refused: bad signature", "request_id", requestIDOf(c), "addon", id)
		}
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"message": "ok"})
}
