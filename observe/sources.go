package observe

import (
	"strings"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// This file is where observe reads bus, bridge and persist. Everything the
// collector and the admin page know of them goes through the functions
// below, so that a counter those packages add later is wired in here, in
// one place.

// topicDropped returns how many of the topic's messages full queues
// dropped, and whether the bus reports it.
func topicDropped(t bus.TopicStats) (uint64, bool) { return t.Dropped, true }

// readBridge takes a snapshot of br's counters.
func readBridge(br *bridge.Bridge) bridge.Stats { return br.Stats() }

// sessionView is one bridge session as the admin page shows it.
type sessionView struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Connected bool      `json:"connected"`
	Rooms     []string  `json:"rooms"`
	Subs      int       `json:"subscriptions"`
	Resumes   int       `json:"resumes"`
	Since     time.Time `json:"since"`
	Remote    string    `json:"remote,omitempty"`
}

// bridgeSessions lists br's sessions, at most limit of them (sorted by
// id), and how many there are in all.
func bridgeSessions(br *bridge.Bridge, limit int) (list []sessionView, total int) {
	all := br.Sessions()
	list = make([]sessionView, 0, min(len(all), limit))
	for _, si := range all[:min(len(all), limit)] {
		list = append(list, sessionView{
			ID: si.ID, User: si.User, Connected: si.Connected, Rooms: si.Rooms, Subs: si.Subscriptions,
			Resumes: si.Resumes, Since: si.Since, Remote: si.Remote,
		})
	}
	return list, len(all)
}

// disconnect closes the connection of session id; the client resumes it.
func disconnect(br *bridge.Bridge, id string) error {
	if br == nil {
		return ErrUnsupported
	}
	return br.Disconnect(id)
}

// label folds the bus's own topic names: "$rooms.<room>" into "$rooms" and
// "$dead.<topic>" into "$dead" (any other "$x.<...>" into "$x"), and gives
// other names to f, when set.
func label(name string, f func(string) string) string {
	if strings.HasPrefix(name, "$") {
		tok, _, _ := strings.Cut(name, ".")
		return tok
	}
	if f != nil {
		return f(name)
	}
	return name
}
