package web

import (
	"net/http"
	"net/http/pprof"

	"github.com/labstack/echo/v4"
)

// pprofPrefix is where the web process serves Go's profiler: under /admin,
// behind the operators' password, because profiles and goroutine dumps show
// the process's internals (and request data in flight).
const pprofPrefix = "/admin/debug/pprof"

// pprofRoutes serves net/http/pprof under pprofPrefix, so a slow or bloated
// web dyno can be profiled in place (go tool pprof with Basic auth
// admin:$ADMIN_PASSWORD) instead of guessed at. pprof.Index only recognises
// its own /debug/pprof/ path, so each profile is routed here by name.
func (s *server) pprofRoutes(e *echo.Echo) {
	g := e.Group(pprofPrefix, s.adminAuth())
	g.GET("", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, pprofPrefix+"/")
	})
	g.GET("/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	g.GET("/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	g.GET("/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	g.GET("/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	g.POST("/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	g.GET("/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	g.GET("/:name", func(c echo.Context) error {
		pprof.Handler(c.Param("name")).ServeHTTP(c.Response(), c.Request())
		return nil
	})
}
