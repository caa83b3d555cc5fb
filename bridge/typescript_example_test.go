package bridge_test

import (
	"fmt"
	"strings"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// Order is what the shop publishes.
type Order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
	Note  string `json:"note,omitempty"`
}

// The bridge declares the exposed topics' payloads in TypeScript, from
// their Go types; it serves the same text at /bus/topics.d.ts.
func ExampleBridge_TypeScript() {
	b, _ := bus.New()
	defer b.Close()
	if _, err := bus.NewTopic[Order](b, "shop.orders"); err != nil {
		fmt.Println(err)
		return
	}
	br, err := bridge.New(b, bridge.Expose("shop.>", bridge.Subscribe))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer br.Close()
	ts, err := br.TypeScript()
	if err != nil {
		fmt.Println(err)
		return
	}
	_, decls, _ := strings.Cut(string(ts), "export interface Topics")
	fmt.Print("export interface Topics" + decls)
	// Output:
	// export interface Topics {
	//   subscribe: {
	//     'shop.orders': Order;
	//     [topic: `shop.${string}`]: unknown;
	//   };
	//   publish: {
	//   };
	//   request: {
	//   };
	// }
	//
	// export interface Order {
	//   id: string;
	//   total: number;
	//   note?: string;
	// }
}
