// Package stream will fan events out to Subscribe streams: one LISTEN
// connection per process wakes a hub, which reads new events from the
// per-pod event log in batches and hands each subscriber its pods' events in
// seq order, exactly once, with catch-up from the client's cursors.
package stream
