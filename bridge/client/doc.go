// Package client is a Go client of the Courier bridge protocol
// (docs/protocol.md): for Go services at the edge, tests and benchmarks.
//
//	c, err := client.Dial(ctx, "wss://example.com/bus/",
//		client.Header(http.Header{"Authorization": {"Bearer " + token}}))
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	_, err = c.Subscribe(ctx, "chat.lobby", func(ctx context.Context, m *client.Message) error {
//		fmt.Printf("%s: %s\n", m.Topic, m.Data)
//		return nil // acknowledges; an error asks for a redelivery
//	})
//	seq, err := c.Publish(ctx, "chat.lobby", map[string]string{"text": "hi"}, client.Ack())
//
// The client reconnects by itself with exponential backoff and jitter and
// resumes its session: subscriptions, rooms and unacknowledged deliveries
// survive a dropped connection, and a handler sees each message once, in
// order, even when the server sends it again after a reconnect. [OnEvent]
// reports connects (resumed, and recovered per subscription),
// disconnects, resyncs and errors.
//
// Frames other than acks are paced to the frame rate the server announces
// in its welcome, so a client that publishes faster waits instead of having
// frames refused as rate_limited.
//
// [Client.Close] ends the session and returns after every goroutine of the
// client, handlers included, has returned.
package client
