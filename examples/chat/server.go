package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/examples/internal/chatapp"
	"github.com/courierbus/courier/observe"
	"github.com/courierbus/courier/persist"
)

// config is what the command line sets.
type config struct {
	addr    string        // listen address
	dataDir string        // Badger directory; ignored with memory
	memory  bool          // keep everything in memory
	history int           // messages shown on joining a room
	logger  *slog.Logger  // nil: discard
	timeout time.Duration // http.Server read and write timeouts; 0: 30s
	// adminPassword opens the admin page at /admin/ to the user "admin"
	// with this password; "" leaves it closed.
	adminPassword string
	// accounts are the users who may sign in; nil: none yet, with
	// passwords hashed at chatapp.DefaultHashCost.
	accounts *chatapp.Accounts
}

// The chat's names (package chatapp).
const (
	chatPrefix   = chatapp.ChatPrefix
	roomsList    = chatapp.RoomsList
	roomPosition = chatapp.RoomPosition
	adminTopic   = chatapp.AdminTopic
)

// The answers of the endpoints rooms.list and rooms.position.
type (
	roomInfo chatapp.RoomInfo
	position = chatapp.Position
)

// newServer makes the chat on a bus of its own, on Badger unless
// cfg.memory; closing the server closes the bus and the store.
func newServer(cfg config) (*chatapp.Server, error) {
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The store's commit histograms are filled by its OnCommit hook, so
	// they exist before the store.
	commits := observe.NewCommits()
	opts := []chatapp.Option{chatapp.WithLogger(log), chatapp.History(cfg.history),
		chatapp.AdminPassword(cfg.adminPassword), chatapp.WithCommits(commits)}
	if cfg.accounts != nil {
		opts = append(opts, chatapp.WithAccounts(cfg.accounts))
	}
	var busOpts []bus.Option
	var st *persist.Store
	if !cfg.memory {
		var err error
		st, err = persist.Open(cfg.dataDir, persist.Retain(persist.Limits{Count: 10000}), persist.OnCommit(commits.Observe))
		if err != nil {
			return nil, fmt.Errorf("chat: open %s: %w", cfg.dataDir, err)
		}
		busOpts = append(busOpts, bus.WithStore(st))
		opts = append(opts, chatapp.WithStore(st))
	}
	closeStore := func() {
		if st != nil {
			st.Close()
		}
	}
	// Pages may name new rooms (and with them topics): bound how many.
	b, err := bus.New(append(busOpts, bus.WithLogger(log), bus.MaxTopics(chatapp.MaxTopics))...)
	if err != nil {
		closeStore()
		return nil, err
	}
	closers := []chatapp.Option{chatapp.CloseAfter(b)}
	if st != nil {
		closers = append(closers, chatapp.CloseAfter(st))
	}
	s, err := chatapp.New(b, append(opts, closers...)...)
	if err != nil {
		b.Close()
		closeStore()
		return nil, err
	}
	return s, nil
}

// serve serves the chat on ln until ctx ends, then shuts down: the HTTP
// server first (no new connections), then the bridge, bus and store.
func serve(ctx context.Context, ln net.Listener, s *chatapp.Server, timeout time.Duration) error {
	return chatapp.Serve(ctx, ln, s, timeout)
}
