package persist_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/persist"
)

func Example() {
	dir, err := os.MkdirTemp("", "courier-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := persist.Open(dir) // synced: Append returns once the record is on disk
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, text := range []string{"hello", "world"} {
		seq, err := st.Append(ctx, "chat.room1", bus.Record{Time: time.Now(), Data: []byte(text)})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("appended", seq)
	}
	recs, err := st.Read(ctx, "chat.room1", 1, 10, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("%d: %s\n", r.Seq, r.Data)
	}
	if err := st.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// appended 1
	// appended 2
	// 1: hello
	// 2: world
}
