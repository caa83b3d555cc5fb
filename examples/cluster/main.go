// Command cluster runs the chat of examples/chat on three nodes in one
// process: an embedded NATS cluster of three servers with JetStream, and
// three chat nodes, each with a NATS connection to its own server, a
// cluster.Node, a bus on it and the chat's bridge and page on a port of its
// own. The nodes share their topics, rooms and endpoints, so two pages
// opened on two nodes chat with each other; a page whose node goes away
// moves to another node by itself and misses nothing. Every node serves
// the nodes' page at /nodes/, which stops and starts nodes, to show it.
//
//	go run ./examples/cluster                 # http://127.0.0.1:8081/, :8082/ and :8083/
//	go run ./examples/cluster -data ./cluster-data -addrs 127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003
//
// NATS keeps its files in a temporary directory removed on exit, unless
// -data names one. SIGINT or SIGTERM closes the nodes, then NATS.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	var cfg config
	addrs := flag.String("addrs", "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083",
		"listen addresses of the chat nodes, comma-separated (one node each)")
	flag.StringVar(&cfg.dataDir, "data", "", "directory for NATS's files (default: a temporary directory, removed on exit)")
	flag.IntVar(&cfg.history, "history", 50, "messages shown on joining a room")
	verbose := flag.Bool("v", false, "log debug messages")
	flag.Parse()
	cfg.addrs = strings.Split(*addrs, ",")
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
