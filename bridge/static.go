package bridge

import (
	"bytes"
	"embed"
	"net/http"
	"time"
)

// static holds the browser client; it is read-only.
//
//go:embed js/*.js
var static embed.FS

// serveStatic serves an embedded file of js/.
func (b *Bridge) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	data, err := static.ReadFile("js/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}
