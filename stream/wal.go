package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pods-dev/pods/db"
)

// Change sources: how the hub learns that a pod has new events.
const (
	// SourceNotify: the events trigger sends pg_notify (the default).
	SourceNotify = "notify"
	// SourceWAL: the hub streams the inserts into events by logical
	// replication (pgoutput), and the trigger sends nothing, so writers
	// never take the notification queue's lock.
	SourceWAL = "wal"
)

// standbyInterval is how often the replication reader confirms its
// position to the server.
const standbyInterval = time.Second

// replicate streams the event log's inserts through a temporary
// replication slot (dropped by the server when the connection ends, so a
// dead node never holds WAL), marking the pods of each committed
// transaction dirty. It reconnects with jittered backoff; each new slot
// starts at the present, so the hub then catches up every pod from the log.
func (h *Hub) replicate(ctx context.Context) {
	var retry reconnectBackoff
	for ctx.Err() == nil {
		began := time.Now()
		err := h.replicateOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := retry.next(time.Since(began))
		h.metrics.walReconnects.Inc()
		h.log.Warn("stream: replication stopped", "err", err, "retry_in", wait)
		sleep(ctx, wait)
	}
}

// slotName names a new replication slot of this node: up to 32 characters
// of the node id that are valid in a slot name, for the people reading
// pg_replication_slots, and a random suffix. Every connection creates its
// own slot: a temporary slot lives as long as its walsender, and the
// walsender of a connection that died silently (a lost machine, a
// connection replaced for silence) lives on until Postgres notices, up to
// wal_sender_timeout, and a fixed name would stay taken all that time.
func slotName(nodeID string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(nodeID) {
		switch {
		case b.Len() == 32:
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r == '-':
			b.WriteByte('_')
		}
	}
	var suffix [8]byte
	rand.Read(suffix[:])
	return "pods_" + b.String() + "_" + hex.EncodeToString(suffix[:])
}

// walReader is the state of one replication connection.
type walReader struct {
	hub       *Hub
	relations map[uint32]*pglogrepl.RelationMessageV2
	podColumn int              // index of events.pod_id; -1 until known
	seqColumn int              // index of events.seq; -1 until known
	txPods    map[string]int64 // pods of the transaction being decoded → their last seq
	// confirmed is the position confirmed to the server: the end of the
	// last commit whose pods were handed to the hub. From there the hub
	// reads their events from the log, which keeps them, so nothing the
	// server may then drop is still needed.
	confirmed pglogrepl.LSN
}

func (h *Hub) replicateOnce(ctx context.Context) error {
	cfg := h.cfg.Pool.Config().ConnConfig.Config.Copy()
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "pods wal " + h.cfg.NodeID
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	// Cancel the reader before closing: closing first can hang.
	readCtx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); conn.Close(context.Background()) }()

	slot := slotName(h.cfg.NodeID)
	created, err := pglogrepl.CreateReplicationSlot(readCtx, conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true})
	if err != nil {
		return fmt.Errorf("creating replication slot: %w", err)
	}
	start, err := pglogrepl.ParseLSN(created.ConsistentPoint)
	if err != nil {
		return err
	}
	err = pglogrepl.StartReplication(readCtx, conn, slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '2'", "publication_names '" + db.EventsPublication + "'"},
	})
	if err != nil {
		return fmt.Errorf("starting replication: %w", err)
	}
	h.resync()
	r := &walReader{hub: h, relations: make(map[uint32]*pglogrepl.RelationMessageV2), podColumn: -1, seqColumn: -1,
		txPods: make(map[string]int64)}
	r.advance(start)
	defer h.walPosition.Store(0)
	nextStatus := time.Now().Add(standbyInterval)
	heard := time.Now() // when the server last sent anything
	for {
		// Quiet for ProbeInterval: ask the server for an answer; none
		// for as long again, and the connection is taken for dead (it
		// may be, silently, with the writes still going into buffers).
		quiet := time.Since(heard)
		if quiet > 2*h.cfg.ProbeInterval {
			return fmt.Errorf("replication: nothing heard from the server for %s", quiet.Round(time.Millisecond))
		}
		if time.Now().After(nextStatus) {
			if err := r.sendStatus(readCtx, conn, quiet >= h.cfg.ProbeInterval); err != nil {
				return err
			}
			nextStatus = time.Now().Add(min(standbyInterval, h.cfg.ProbeInterval/2))
		}
		recvCtx, cancelRecv := context.WithDeadline(readCtx, nextStatus)
		msg, err := conn.ReceiveMessage(recvCtx)
		cancelRecv()
		if readCtx.Err() != nil {
			return readCtx.Err()
		}
		if pgconn.Timeout(err) {
			continue // time for a status update
		}
		if err != nil {
			return err
		}
		heard = time.Now()
		switch msg := msg.(type) {
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.CopyData:
			replyNow, err := r.handle(msg.Data)
			if err != nil {
				return err
			}
			if replyNow {
				nextStatus = time.Time{}
			}
		}
	}
}

// handle decodes one message of the replication stream. It reports
// whether the server asked for a reply.
func (r *walReader) handle(data []byte) (bool, error) {
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		keepalive, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return false, err
		}
		if len(r.txPods) == 0 {
			// Between transactions: everything up to here is handled.
			r.advance(keepalive.ServerWALEnd)
		}
		return keepalive.ReplyRequested, nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return false, err
		}
		return false, r.decode(xld.WALData)
	}
	return false, nil
}

func (r *walReader) decode(walData []byte) error {
	msg, err := pglogrepl.ParseV2(walData, false)
	if err != nil {
		return fmt.Errorf("decoding replication message: %w", err)
	}
	switch msg := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		r.relations[msg.RelationID] = msg
		for i, c := range msg.Columns {
			switch {
			case msg.RelationName != "events":
			case c.Name == "pod_id":
				r.podColumn = i
			case c.Name == "seq":
				r.seqColumn = i
			}
		}
	case *pglogrepl.InsertMessageV2:
		rel := r.relations[msg.RelationID]
		cols := msg.Tuple.Columns
		if rel == nil || rel.RelationName != "events" || r.podColumn < 0 || r.seqColumn < 0 || max(r.podColumn, r.seqColumn) >= len(cols) {
			return errors.New("replication: insert into an unknown relation")
		}
		seq, err := strconv.ParseInt(string(cols[r.seqColumn].Data), 10, 64)
		if err != nil {
			return fmt.Errorf("replication: decoding seq: %w", err)
		}
		pod := string(cols[r.podColumn].Data)
		r.txPods[pod] = max(r.txPods[pod], seq)
	case *pglogrepl.CommitMessage:
		r.hub.walCommitted(r.txPods)
		r.advance(msg.TransactionEndLSN)
		clear(r.txPods)
	}
	return nil
}

// walCommitted marks the tracked pods among pods dirty, with the seq each
// must reach, and wakes the fetcher. A commit can reach the replication
// stream a moment before other sessions see it, so the fetcher reads again
// until it has the seq the stream announced. Pods already past that seq
// (this node committed the events and fanned them out) need no read. The
// seqs of untracked pods are kept a while (walSeen): a stream that starts
// watching one may read its position before such a commit is visible.
func (h *Hub) walCommitted(pods map[string]int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for id, seq := range pods {
		ps, ok := h.pods[id]
		switch {
		case !ok:
			h.walSeen[id] = walAnnounced{seq: max(h.walSeen[id].seq, seq), at: now}
		case !(ps.known && seq <= ps.lastSeq):
			ps.wantSeq = max(ps.wantSeq, seq)
			h.markDirtyLocked(id, now)
		}
	}
	if now.Sub(h.walSeenSwept) > walSeenKeep {
		for id, a := range h.walSeen {
			if now.Sub(a.at) > walSeenKeep {
				delete(h.walSeen, id)
			}
		}
		h.walSeenSwept = now
	}
}

// walAnnounced is a seq the WAL source saw committed, and when.
type walAnnounced struct {
	seq int64
	at  time.Time
}

// walSeenKeep is how long the seq of a commit in an untracked pod is kept:
// far longer than a commit takes to become visible after it reaches the
// replication stream (a synchronous standby's round trip).
const walSeenKeep = time.Minute

// walSeenFor returns the last seq the WAL source saw committed in pod
// within walSeenKeep, or 0. h.mu must be held.
func (h *Hub) walSeenFor(pod string) int64 {
	if a, ok := h.walSeen[pod]; ok && time.Since(a.at) <= walSeenKeep {
		return a.seq
	}
	return 0
}

// advance moves the confirmed position to lsn if that is later, and
// publishes it for the lag metric.
func (r *walReader) advance(lsn pglogrepl.LSN) {
	r.confirmed = max(r.confirmed, lsn)
	r.hub.walPosition.Store(uint64(r.confirmed))
}

// sendStatus confirms the position of the last handled commit, asking
// the server for an answer if replyRequested.
func (r *walReader) sendStatus(ctx context.Context, conn *pgconn.PgConn, replyRequested bool) error {
	return pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: r.confirmed, WALFlushPosition: r.confirmed, WALApplyPosition: r.confirmed,
		ReplyRequested: replyRequested,
	})
}
