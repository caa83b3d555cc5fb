package bus_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/courierbus/courier/bus"
)

type Order struct {
	ID    string
	Total int
}

func ExampleNewTopic() {
	b, err := bus.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()

	orders, err := bus.NewTopic[Order](b, "shop.orders")
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	_, err = orders.Subscribe(func(ctx context.Context, m bus.Message[Order]) error {
		fmt.Printf("order %s for %d (seq %d)\n", m.Value.ID, m.Value.Total, m.Seq())
		close(done)
		return nil // nil acknowledges
	})
	if err != nil {
		panic(err)
	}
	if _, err := orders.Publish(context.Background(), Order{ID: "A-1", Total: 42}); err != nil {
		panic(err)
	}
	<-done
	// Output: order A-1 for 42 (seq 1)
}

func ExampleBus_Subscribe() {
	b, _ := bus.New()
	defer b.Close()

	got := make(chan string, 2)
	// A wildcard subscriber sees every matching topic, with the value's bytes.
	b.Subscribe("shop.>", func(ctx context.Context, m bus.Message[any]) error {
		data, err := m.Data()
		got <- fmt.Sprintf("%s %s", m.Topic(), data)
		return err
	})
	orders, _ := bus.NewTopic[Order](b, "shop.orders")
	orders.Publish(context.Background(), Order{ID: "A-2", Total: 7})
	fmt.Println(<-got)
	// Output: shop.orders {"ID":"A-2","Total":7}
}

func ExampleMember_Join() {
	b, _ := bus.New()
	defer b.Close()
	ctx := context.Background()
	chat, _ := bus.NewTopic[string](b, "chat")

	got := make(chan string, 3)
	for _, id := range []string{"ann", "bob", "cid"} {
		m, _ := b.Member(id)
		if id != "cid" {
			m.Join(ctx, "lobby")
		}
		chat.Subscribe(func(ctx context.Context, msg bus.Message[string]) error {
			got <- id + " got " + msg.Value
			return nil
		}, bus.Owner(m))
	}
	fmt.Println(b.RoomMembers("lobby"))
	// To a room, except the sender.
	chat.Publish(ctx, "hello lobby", bus.To("lobby"), bus.ExceptMember("ann"))
	fmt.Println(<-got)
	// Output:
	// [ann bob]
	// bob got hello lobby
}

func ExampleDeadLetterTopic() {
	b, _ := bus.New()
	defer b.Close()
	ctx := context.Background()
	jobs, _ := bus.NewTopic[string](b, "jobs")

	dead := make(chan bus.DeadLetter, 1)
	b.Subscribe(bus.DeadLetterTopic("jobs"), func(ctx context.Context, m bus.Message[any]) error {
		dead <- m.Value.(bus.DeadLetter)
		return nil
	})
	jobs.Subscribe(func(ctx context.Context, m bus.Message[string]) error {
		fmt.Println("attempt", m.Attempt())
		return errors.New("printer on fire")
	}, bus.MaxDeliver(3), bus.Backoff(func(int) time.Duration { return time.Millisecond }))

	jobs.Publish(ctx, "print report")
	d := <-dead
	fmt.Printf("%s seq %d: %d attempts, last error %q\n", d.Topic, d.Seq, d.Attempts, d.Error)
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
	// jobs seq 1: 3 attempts, last error "printer on fire"
}

func ExampleMessage_Ack() {
	b, _ := bus.New()
	defer b.Close()
	jobs, _ := bus.NewTopic[string](b, "jobs")

	work := make(chan bus.Message[string], 1)
	jobs.Subscribe(func(ctx context.Context, m bus.Message[string]) error {
		work <- m // hand it to another goroutine; it acks when done
		return nil
	}, bus.ManualAck(), bus.AckWait(time.Minute))

	jobs.Publish(context.Background(), "resize image")
	m := <-work
	fmt.Println("working on", m.Value)
	fmt.Println(m.Ack())
	// Output:
	// working on resize image
	// <nil>
}

func ExampleEndpoint_Request() {
	b, _ := bus.New()
	defer b.Close()
	ctx := context.Background()

	price, _ := bus.NewEndpoint[string, int](b, "shop.price")
	price.Handle(func(ctx context.Context, item string) (int, error) {
		if item == "tea" {
			return 3, nil
		}
		return 0, fmt.Errorf("no such item %q", item)
	})

	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	p, err := price.Request(ctx, "tea")
	fmt.Println(p, err)
	_, err = price.Request(ctx, "gold")
	fmt.Println(err)
	// Output:
	// 3 <nil>
	// no such item "gold"
}

func ExampleTopic_Read() {
	b, _ := bus.New()
	defer b.Close()
	ctx := context.Background()
	news, _ := bus.NewTopic[string](b, "news", bus.History(2, 0))
	for _, s := range []string{"one", "two", "three"} {
		news.Publish(ctx, s)
	}
	msgs, _ := news.Read(ctx, 2, 10)
	for _, m := range msgs {
		fmt.Println(m.Seq(), m.Value)
	}
	_, err := news.Read(ctx, 1, 10)
	fmt.Println(errors.Is(err, bus.ErrNotCovered))
	// Output:
	// 2 two
	// 3 three
	// true
}

func ExampleBus_Close() {
	b, _ := bus.New()
	t, _ := bus.NewTopic[int](b, "n")
	fmt.Println(b.Close(), b.Close())
	_, err := t.Publish(context.Background(), 1)
	fmt.Println(err)
	// Output:
	// <nil> <nil>
	// bus: closed
}
