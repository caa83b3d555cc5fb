package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

// Mount a bridge on the host's mux; a Go client subscribes and publishes.
func ExampleNew() {
	b, _ := bus.New()
	defer b.Close()
	br, err := bridge.New(b,
		bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish),
		bridge.ExposeRooms("lobby", bridge.Join, bridge.Presence),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer br.Close()
	mux := http.NewServeMux()
	mux.Handle("/bus/", br)
	srv := httptest.NewUnstartedServer(mux) // listens on 127.0.0.1
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	defer srv.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/bus/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	got := make(chan string, 1)
	c.Subscribe(ctx, "chat.lobby", func(_ context.Context, m *client.Message) error {
		got <- fmt.Sprintf("%s #%d: %s", m.Topic, m.Seq, m.Data)
		return nil
	})
	// In-process publishers reach WebSocket clients too.
	b.PublishRaw(ctx, "chat.lobby", []byte(`{"text":"hello"}`))
	fmt.Println(<-got)
	// Output: chat.lobby #1: {"text":"hello"}
}

// A Go client publishes with an acknowledgement, joins a room, and serves
// a request the server sends it.
func ExampleBridge_Request() {
	b, _ := bus.New()
	defer b.Close()
	br, _ := bridge.New(b, bridge.Expose("chat.>", bridge.Publish), bridge.ExposeRooms("lobby", bridge.Join, bridge.Presence))
	defer br.Close()
	srv := httptest.NewServer(br)
	defer srv.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	seq, _ := c.Publish(ctx, "chat.lobby", "hi", client.Ack())
	fmt.Println("published seq", seq)
	c.Join(ctx, "lobby")
	members, _ := c.Presence(ctx, "lobby")
	fmt.Println("members:", len(members), members[0].Member == c.SessionID())

	c.Handle("ui.confirm", func(_ context.Context, q json.RawMessage) (any, error) {
		return "yes to " + string(q), nil
	})
	reply, err := br.Request(ctx, c.SessionID(), "ui.confirm", []byte(`"delete"`))
	fmt.Println(string(reply), err)
	// Output:
	// published seq 1
	// members: 1 true
	// "yes to \"delete\"" <nil>
}
