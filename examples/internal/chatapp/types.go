package chatapp

import "embed"

// typesSource is this file: the doc comments of the types the page sees,
// which the bridge carries over into the TypeScript it serves at
// /bus/topics.d.ts.
//
//go:embed types.go
var typesSource embed.FS

// The types of what the page and the server send each other. The page
// (chat.js) is checked against their TypeScript declarations, which the
// bridge generates from them: bus/topics.d.ts holds a copy, written with
//
//	go run ./examples/chat -memory &
//	go run ./cmd/courier-ts -url http://127.0.0.1:8080/bus/ -dir examples/internal/chatapp/bus

// Message is a chat message, as a page publishes it to a room's topic
// "chat.<room>". It does not say who wrote it: the bridge's courier-user
// header does, which no client can forge.
type Message struct {
	// Text is what the user wrote.
	Text string `json:"text"`
	// CID is the sending page's id of the message, which lets it find the
	// message it shows as pending when the server hands it back.
	CID string `json:"cid,omitempty"`
	// TS is when the page sent it, in milliseconds since 1970.
	TS int64 `json:"ts,omitempty"`
}

// RoomsQuery is the rooms.list request: it asks nothing.
type RoomsQuery struct{}

// RoomInfo is a room in the rooms.list answer.
type RoomInfo struct {
	// Name is the room's name, and its topic's last token.
	Name string `json:"name"`
	// Members is how many sessions are in the room.
	Members int `json:"members"`
}

// PositionQuery is the rooms.position request.
type PositionQuery struct {
	// Room is the room whose history end is asked for.
	Room string `json:"room"`
}

// Position is a room's history end, the rooms.position answer. The epoch
// is a string, as on the wire: it uses all 64 bits, which JavaScript
// numbers cannot hold.
type Position struct {
	Room  string `json:"room"`
	Epoch string `json:"epoch"`
	// Seq is the sequence number of the room's last message, 0 for none.
	Seq uint64 `json:"seq"`
	// History is how many messages the page shows on joining.
	History int `json:"history"`
}
