// Package stream fans the per-pod event log out to Subscribe streams.
//
// # Source and ordering
//
// Every change clients must see is a row in the events table, written by a
// trigger in the changing transaction, with the next seq of its pod taken
// from pods.last_seq. Writers of one pod serialize on the pod row, so seqs
// commit in order and without gaps. A trigger on events sends pg_notify on
// channel pods_events with the pod id (Postgres merges identical payloads
// within a transaction). Membership inserts also notify pods_members with
// the user id.
//
// # The hub
//
// One Hub per process holds one LISTEN connection, used for nothing else.
// A notification is only a wake-up: it marks the pod dirty, and a single
// fetcher reads the new events of all dirty pods in one query (after the
// hub's last seq of each), converts each event once and queues the same
// batch to every subscriber of the pod. Fan-out never blocks: each
// subscriber has a bounded queue, and a full queue cuts the subscriber off
// with resource_exhausted. The client resumes from its cursors and loses
// nothing; nobody else waits for it.
//
// # The writing node
//
// A node that commits messages itself (SendMessage goes through
// db.MessageBatcher, which groups concurrent sends into one statement and
// one commit) hands them to its hub right after the commit, before the
// callers are answered: MessagesWritten fans out each event that continues a
// pod's delivered seq at once, without waiting for the notification and the
// log read. An event that would skip a seq (another node's event is not
// delivered yet) marks its pod dirty instead, and so does a failed write
// (it may have failed after its commit): the log stays the only truth and
// the order per pod is kept. The batcher writes on a pool of its own
// (db.Writers), which knows the backend PIDs of its connections while they
// write, and the listener skips the notifications they send: every commit
// of theirs reaches the hub through MessagesWritten as soon as its outcome
// is known, so reading the log for it would find nothing new (at 500
// messages/s those reads took two fifths of the database's CPU time).
// Other nodes hear the notifications as any. A connection counts as the
// writers' only while it writes and for a few seconds after, so that the
// PID of a backend that died unnoticed, which another session may get,
// does not pass for theirs; after a reconnect of the listener (Postgres
// may have restarted and be handing out PIDs anew) the writers own nothing
// until they have connected anew.
//
// # One stream
//
// Serve registers the subscriber under its user, reads the user's
// memberships, attaches their pods to the hub (which then tracks each pod
// from its current last seq), and only then reads the state for ready and
// the log for the catch-up. Everything committed later reaches the hub, so
// the seam has no gap; the stream drops every event at or below the last
// seq it sent, so it has no duplicate. If the hub hands it an event beyond
// the next seq, the stream fills the gap from the log first: per pod, the
// client sees every seq exactly once, in order.
//
// A join notifies pods_members: the user's streams reread their memberships
// and start the new pod at the user's memberJoined event. The user's own
// memberLeft event, or the pod's deletion (the fetch finds the pod gone),
// ends the pod's part of the stream after it is sent; after a memberLeft
// the stream rereads the memberships too, for a join that came after the
// leave but reached the stream before it.
//
// A stream lives no longer than the session it was opened with: a deleted
// or changed session is announced on pods_sessions, and every node ends
// that session's streams with unauthenticated at once (a stream that
// registers within a minute of the announcement, having authenticated just
// before it, is checked at once too); every SessionCheckInterval each node
// also asks the database which of its streams' sessions expired or were
// deleted unheard.
//
// # Failures
//
// Notifications sent while the listener is disconnected are lost, so the
// listener reconnects with jittered backoff and then marks every tracked
// pod dirty and has every stream recheck its memberships; it pings its
// connection when it has heard nothing for a while, to find a connection
// that died silently. While it (or, with the wal source, the replication
// connection) is down, every tracked pod is read each second. A failed
// fetch is retried with backoff. A stream whose own reads fail ends with
// unavailable, and the client resumes from its cursors. Nothing a node
// holds in memory is needed to resume: the log in Postgres is the only
// truth.
//
// # Shutdown
//
// Close ends every stream with unavailable and refuses new ones. A server
// calls it once it has stopped accepting connections (rpc.Server.Shutdown
// does), so that clients resubscribe on another node; Run goes on until its
// context ends, which the server cancels after the calls in flight finish.
package stream
