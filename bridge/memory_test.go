package bridge_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkIdleConnection measures the server's memory per idle
// connection: 3000 connections that said hello and then wait. It reports
// resident set and Go heap+stack per connection, for the bridge and for
// raw melody with its defaults and with the tuning in DESIGN.md.
func BenchmarkIdleConnection(b *testing.B) {
	const n = 3000
	for _, mode := range []string{"bridge", "melody", "melody-tuned"} {
		b.Run(mode, func(b *testing.B) {
			srv := startServer(b, mode)
			before := srv.stats(b)
			conns := make([]*websocket.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
			for i := range n {
				ws, _, err := d.Dial("ws://"+srv.addr+"/bus/", nil)
				if err != nil {
					b.Fatalf("connection %d: %v", i, err)
				}
				conns = append(conns, ws)
				if mode == "bridge" {
					ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"hello","v":1}`))
					if _, _, err := ws.ReadMessage(); err != nil {
						b.Fatal(err)
					}
				}
			}
			time.Sleep(2 * time.Second) // let the server settle
			after := srv.stats(b)
			if f := os.Getenv("COURIER_HEAP_PROFILE"); f != "" {
				resp, err := http.Get("http://" + srv.addr + "/heap")
				if err == nil {
					out, _ := os.Create(f + "." + mode)
					io.Copy(out, resp.Body)
					out.Close()
					resp.Body.Close()
				}
			}
			rss := float64(after.RSS-before.RSS) / n
			heap := float64(after.Heap+after.Stack-before.Heap-before.Stack) / n
			b.ReportMetric(rss, "rss-B/conn")
			b.ReportMetric(heap, "heap+stack-B/conn")
			b.ReportMetric(float64(after.Goroutines-before.Goroutines)/n, "goroutines/conn")
			b.ReportMetric(float64(after.Stack-before.Stack)/n, "stack-B/conn")
			fmt.Printf("%s: %d idle connections: RSS %.1f KiB/conn, Go heap+stack %.1f KiB/conn (stacks %.1f), %.1f goroutines/conn\n",
				mode, n, rss/1024, heap/1024, float64(after.Stack-before.Stack)/n/1024, float64(after.Goroutines-before.Goroutines)/n)
		})
	}
}
