// Command chat is a chat server built on Courier: rooms, live presence,
// message history on joining a room, kept in a Badger directory, and a
// single page that talks to the server through courier.js.
//
//	go run ./examples/chat                      # http://127.0.0.1:8080/
//	go run ./examples/chat -addr 127.0.0.1:9000 -memory
//	go run ./examples/chat -admin-password s3cret # and http://127.0.0.1:8080/admin/
//
// Users sign in on the page with a name and a password: the first sign-in
// with a name sets its password, and the server answers with a signed
// session cookie that the bridge's Authenticate hook checks.
//
// Prometheus metrics of the bus, the bridge and the store are at /metrics
// (package observe). The admin page at /admin/ shows topics, rooms,
// sessions and dead letters live; it opens to the user "admin" with the
// password of -admin-password (or $CHAT_ADMIN_PASSWORD), and stays closed
// without one.
//
// The bridge is mounted at /bus/ on the program's own mux and exposes only
// the chat: topics "chat.<room>" (subscribe, publish), the endpoints
// "rooms.list" and "rooms.position" (request) and every one-token room
// (join, presence). The topic "admin.announce" is not exposed: the page's
// "/announce" command publishes there to show the "forbidden" error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address")
	flag.StringVar(&cfg.dataDir, "data", "./chat-data", "Badger directory that keeps the messages")
	flag.BoolVar(&cfg.memory, "memory", false, "keep the messages in memory only")
	flag.IntVar(&cfg.history, "history", 50, "messages shown on joining a room")
	flag.StringVar(&cfg.adminPassword, "admin-password", os.Getenv("CHAT_ADMIN_PASSWORD"),
		"password of the user \"admin\" on the admin page at /admin/ (default $CHAT_ADMIN_PASSWORD; empty: the page stays closed)")
	verbose := flag.Bool("v", false, "log debug messages")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run starts the chat on cfg.addr, prints the URL to open on out, and
// serves until ctx ends.
func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.addr == "" {
		return errors.New("chat: -addr is empty")
	}
	s, err := newServer(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		s.Close()
		return err
	}
	where := "in memory"
	if !cfg.memory {
		where = "in " + cfg.dataDir
	}
	fmt.Fprintf(out, "chat: messages kept %s\nchat: open http://%s/\n", where, ln.Addr())
	fmt.Fprintf(out, "chat: metrics at http://%s/metrics\n", ln.Addr())
	if cfg.adminPassword != "" {
		fmt.Fprintf(out, "chat: admin page at http://%s/admin/ (user admin)\n", ln.Addr())
	} else {
		fmt.Fprintln(out, "chat: admin page closed (start with -admin-password to open it)")
	}
	return serve(ctx, ln, s, cfg.timeout)
}
