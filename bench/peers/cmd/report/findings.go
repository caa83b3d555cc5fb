package main

// profileFindings is what profiles of the scenarios showed about the bars
// that were missed when it was last written (2026-11-25, on the machine
// of this report); the report prints it when any bar is missed. Update it
// when the code or the figures change.
const profileFindings = `- **bus, at-most-once 1 → 1 and 4 → 1 against channels.** The bus spends about 140 ns of CPU per
  delivery where a channel send and receive spend 35–45 ns. A CPU profile of 4 → 1
  (go test -cpuprofile, BenchmarkInProc in bench/) puts 23% of it in runtime.nanotime: bus.(*Bus).now,
  a time.Since for each publish's message time, costs 36 ns on these machines (kvm guests; measured
  with a one-line benchmark), as much as the whole channel hand-off. Applying the publish options
  (applyPublish through the option interfaces) takes another 13%. A coarser clock (one reading per
  batch of publishes, or a cached time refreshed by the topic's writer) would remove most of the
  first. In 1 → 10 the per-publish costs are shared by ten deliveries and the bus comes within
  about 10% of channels. At 1 → 1 the ratio depends on the channel baseline's mode: the bus
  reaches about a third of channels in their fast mode and beats them in their slow mode (seen in
  earlier reports; the mode of every run is printed under each table).
- **persist, buffered against raw WriteBatch.** CPU per record is the same as WriteBatch's
  (2.3 against 2.4 µs); what is missing is batching: persist's own benchmark reports about 20
  records per committed batch with 64 publishers on 2 cores (publishers wait for their batch, so a
  batch holds only those that arrived during the previous commit), while WriteBatch fills Badger
  transactions to their size limit and commits them asynchronously. Letting the writer linger a few
  microseconds for a fuller batch, or pipelining the next batch's transaction while the previous one
  commits, is where the missing part is.
- **bridge, delivered msgs/s and p99 against raw melody.** The Courier row uses bridge/client, the Go
  client, as the bar asks; with 1000 or 5000 of them in the load-generating process, the clients, not
  the server, set the pace: a CPU profile of that process shows 45% of its time in
  bridge/client.decode (wire.Parse: encoding/json.Unmarshal of every frame, then json.Compact of its
  data in Frame.normalize), against raw readers that only scan bytes for the other servers. The
  courier-raw row is the same server with raw protocol clients: at 1000 clients it delivers several
  times melody's msgs/s with a p99 at or below melody's; at 5000 its runs spread widely (from about
  0.6× to 1.9× melody's msgs/s across runs and reports), because there the server's write system
  calls dominate (next point). Decoding message frames without a full encoding/json pass (and
  without compacting data the server already sent compact) would move the Go-client row towards
  the courier-raw row.
- **bridge, server CPU per delivered message at 5000 clients.** The bridge batches a connection's
  queued frames into one write: at 1000 clients it makes about 0.1 write system calls per delivery
  (melody: 1.0) and needs 0.2–0.3× melody's CPU. At 5000 the fan-out of one publish takes long
  enough that each connection's writer catches up between publishes, so batches are smaller (about
  0.4 writes per delivery with raw clients, 0.6–0.7 with the Go clients, which read more slowly and
  take CPU from the server): about 0.5–0.7× melody's CPU with raw clients, 0.8–1.1× with Go clients.
  A profile of the server is then half write system calls (gorilla's flushFrame), as melody's is.
  Holding a connection's writer back briefly while a fan-out is in progress (or writing after the
  fan-out rather than during it) would keep batches large at 5000 too.
- **bridge, RSS per idle connection.** Measured here each connection has said hello and holds one
  subscription (session, subscription, route entry), and the figure is the server's RSS after a GC
  and FreeOSMemory, per connection: about 19.5 KiB, against raw melody's 27 KiB for a bare
  connection. The bridge's own memory benchmark (bridge/memory_test.go), with connections that
  subscribe to nothing, reports 16.5 KiB; the rest is the subscription's share.`
