package main

// profileFindings is what profiles of the scenarios showed about the bars
// that were missed when it was last written (2026-11-25, on the machine
// of this report); the report prints it when any bar is missed. Update it
// when the code or the figures change.
const profileFindings = `- **bus, at-most-once 1 → 1 and 4 → 1 against channels.** The bus spends about 80–90 ns of CPU per
  delivery where a channel send and receive spend 35–45 ns. Reading the clock for each message's time
  used to be a quarter of that (36 ns per time.Since on these kvm guests); the bus now reads it at
  most once per 500 µs while publishes come fast. What is left, from CPU profiles of
  BenchmarkDelivery in bus/: the subscription queue's mutex, taken by the publisher to add and by the
  worker to take a batch (about a quarter, more with 4 publishers contending for the topic's lock), the
  message itself (a slab of 32 per allocation, filled through GC write barriers while the collector
  runs, which it often does at millions of messages a second), and the handler call with its
  recover. A channel moves a 24-byte value through one runtime lock with no allocation; the bus gives
  every message a sequence number, a time and a place in the topic's history. In 1 → 10 the
  per-publish costs are shared by ten deliveries and the bus meets the bar. A single-producer
  lock-free queue per subscription is the next thing to try for 1 → 1.
- **bridge, 5000 clients: delivered msgs/s, server CPU and p99 against raw melody.** At 1000 clients
  the bridge batches a connection's queued frames into about 0.1 write system calls per delivery and
  needs a quarter of melody's CPU. At 5000 the fan-out of one publish takes long enough that the
  server's one CPU preempts it (every 10 ms) before it has reached every connection, and each
  connection's writer then flushes what it has: about 7 messages per write instead of 30, 0.4–0.6
  writes per delivery, and the server's profile becomes half write system calls, as melody's is.
  Queueing to every connection before waking the writers made it worse (5000 writers woke at once
  with one frame each). Writing after the fan-out of a whole bus batch, which needs the bus to tell a
  subscriber where its batch ends, is where the rest is. With 5000 Go clients in the load-generating
  process the clients also take CPU from the server: the courier-raw row (the same server, raw
  protocol clients) shows what the server does alone.
- **bridge, p99 at 1000 clients.** 15.5 ms against melody's 14.5 ms in the median run; across runs it
  ranges from 0.9× to 1.4× melody's. With 50 samples the p99 is close to the maximum and moves with
  the machine's other load.
- **bridge, RSS per idle connection.** Measured here each connection has said hello and holds one
  subscription (session, subscription, route entry): 18.6 KiB, against raw melody's 27 KiB for a
  bare connection. The bridge's own memory benchmark (bridge/memory_test.go), with connections that
  have said hello and subscribe to nothing, reports 15.2–15.7 KiB; half of that is the two goroutine
  stacks melody runs per connection.`
