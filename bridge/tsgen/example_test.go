package tsgen_test

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/courierbus/courier/bridge/tsgen"
)

// Message is a chat message.
type Message struct {
	Text string   `json:"text"`
	Tags []string `json:"tags,omitempty"`
}

func ExampleGenerate() {
	out, err := tsgen.Generate([]tsgen.Entry{
		{Name: "chat.*", Subscribe: true, Publish: true, Type: reflect.TypeFor[Message]()},
	})
	if err != nil {
		panic(err)
	}
	_, decls, _ := strings.Cut(string(out), "export interface Topics")
	fmt.Print("export interface Topics" + decls)
	// Output:
	// export interface Topics {
	//   subscribe: {
	//     [topic: `chat.${string}`]: Message;
	//   };
	//   publish: {
	//     [topic: `chat.${string}`]: Message;
	//   };
	//   request: {
	//   };
	// }
	//
	// export interface Message {
	//   text: string;
	//   tags?: string[];
	// }
}
