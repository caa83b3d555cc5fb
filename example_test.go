package courier_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// The tour of doc.go is the body of tour, word for word
// (TestDocTourIsExample checks it).
func Example() {
	if err := tour(context.Background(), http.NewServeMux()); err != nil {
		fmt.Println(err)
	}
	// Output: bob says hi
}

func tour(ctx context.Context, mux *http.ServeMux) error {
	b, err := bus.New() // in memory; bus.WithStore(st) to persist
	if err != nil {
		return err
	}
	defer b.Close() // runs last, after the bridge's Close

	type Msg struct{ From, Text string }
	chat, err := bus.NewTopic[Msg](b, "chat.lobby")
	if err != nil {
		return err
	}
	alice, err := b.Member("alice")
	if err != nil {
		return err
	}
	if err := alice.Join(ctx, "lobby"); err != nil {
		return err
	}
	said := make(chan struct{})
	_, err = chat.Subscribe(func(ctx context.Context, m bus.Message[Msg]) error {
		fmt.Println(m.Value.From, "says", m.Value.Text)
		close(said)
		return nil // acknowledged; an error would mean redelivery
	}, bus.Owner(alice))
	if err != nil {
		return err
	}
	if _, err := chat.Publish(ctx, Msg{"bob", "hi"}, bus.To("lobby")); err != nil {
		return err
	}
	<-said

	br, err := bridge.New(b, bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish))
	if err != nil {
		return err
	}
	defer br.Close()
	mux.Handle("/bus/", br) // browsers: import "/bus/client.js"
	return nil
}
