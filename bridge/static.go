package bridge

import (
	"bytes"
	"embed"
	"net/http"
	"strings"
	"time"
)

// static holds the browser client and its declarations; it is read-only.
//
//go:embed js/*.js js/*.d.ts
var static embed.FS

// serveStatic serves an embedded file of js/.
func (b *Bridge) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	data, err := static.ReadFile("js/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(name, ".d.ts") {
		serveTS(w, r, name, data)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}
