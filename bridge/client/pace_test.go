package client_test

import (
	"sync"
	"testing"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
)

// TestPacedToServerRate: a client publishing faster than the server's
// frame rate allows is paced by the client itself, so that no frame is
// refused as rate_limited (each refusal is a strike, and enough of them
// close the connection for good).
func TestPacedToServerRate(t *testing.T) {
	_, url := server(t, bridge.Expose("load.>", bridge.Publish), bridge.RateLimit(200, 20))
	c, err := client.Dial(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 250 // about 1.5 s, paced below 200/s
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := c.Publish(ctxT(t), "load.x", i, client.Ack()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish refused: %v", err)
	}
}
