// Package moderator is the coach: the AI member of every pod. It nudges a
// pod that has gone quiet, calms a conflict, and reminds members who have
// not checked in by their reminder time.
//
// Triggers are found by a scheduler that every node runs and one node at a
// time holds (an advisory lock): quiet pods, members past their local
// reminder time, and hostile runs among the recent messages, which it
// scores locally (Scorer) — messages flagged humor are never scored. Each
// trigger becomes a row in coach_jobs whose key names the trigger, so it is
// one job however many nodes see it. Workers on every node claim due jobs
// with FOR UPDATE SKIP LOCKED, ask the model (or the offline templates) for
// the text, and post it through the normal message path with an
// idempotency key derived from the job key, together with the
// coachIntervened event, the intervention record and the job's completion,
// in one transaction: a job posts exactly once, across retries, nodes and
// restarts.
package moderator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pods-dev/pods/db"
)

// Config configures the coach.
type Config struct {
	Pool   *db.Pool
	Logger *slog.Logger
	// Model writes the messages; nil means the offline templates only.
	Model Responder
	// QuietAfter is how long a pod may be silent before a nudge.
	// Default 2 h.
	QuietAfter time.Duration
	// ConflictWindow is how far back hostile messages count. Default 10 min.
	ConflictWindow time.Duration
	// A conflict is at least ConflictHostile hostile messages among the
	// pod's last ConflictOf scored ones in the window, the newest hostile.
	// Defaults 3 and 5.
	ConflictHostile, ConflictOf int
	// Cooldown is the least time between two conflict interventions in a
	// pod. Default 15 min.
	Cooldown time.Duration
	// Tick is how often each node schedules and works. Default 1 s.
	Tick time.Duration
	// Workers is how many jobs a node works at once, each with its own
	// model calls, apart from the scheduler: a slow model holds up only
	// its own job. Default 4.
	Workers int
	// ScanInterval is how often the scheduler looks for quiet pods and due
	// reminders, which reads every pod and membership. Default the smaller
	// of 10 s and a quarter of QuietAfter.
	ScanInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Metrics is where the coach registers its metrics (one coach per
	// registry). Default: a private registry nobody reads.
	Metrics prometheus.Registerer
}

// Coach finds triggers and speaks.
type Coach struct {
	cfg           Config
	log           *slog.Logger
	scorer        *Scorer
	interventions *prometheus.CounterVec // by trigger and source
	// Scheduler state, while this node holds the scheduler's lock: when it
	// last scanned for quiet pods and reminders, where the next scan for
	// unscored messages starts, and when it last pruned done jobs.
	scanned, scoreFrom, pruned time.Time
}

// scoreSlack bounds how far back the scorer looks again for messages that
// committed after it scanned (see db.WriteHorizon): a message's creation
// time is its transaction's start, and a message may commit after a newer
// one did. Transactions that write messages last seconds at most.
const scoreSlack = time.Minute

// The scorer reads at most scoreBatchesPerTick batches of scoreBatch
// messages per tick: 4,000 messages a second keep up; a larger backlog is
// taken up over the next ticks.
const (
	scoreBatch          = 1000
	scoreBatchesPerTick = 4
)

// Job attempts before a job is given up.
const maxAttempts = 5

// Done jobs are kept for jobRetention (or the cooldown or conflict window,
// if longer), then pruned every pruneInterval, pruneLimit a transaction: a
// backlog (after an upgrade from a version that kept them) goes one tick
// at a time.
const (
	jobRetention  = 7 * 24 * time.Hour
	pruneInterval = time.Hour
	pruneLimit    = 10_000
)

// New returns a coach for cfg.
func New(cfg Config) *Coach {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QuietAfter == 0 {
		cfg.QuietAfter = 2 * time.Hour
	}
	if cfg.ConflictWindow == 0 {
		cfg.ConflictWindow = 10 * time.Minute
	}
	if cfg.ConflictHostile == 0 {
		cfg.ConflictHostile, cfg.ConflictOf = 3, 5
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = 15 * time.Minute
	}
	if cfg.Tick == 0 {
		cfg.Tick = time.Second
	}
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	if cfg.ScanInterval == 0 {
		cfg.ScanInterval = min(10*time.Second, cfg.QuietAfter/4)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Model == nil {
		cfg.Logger.Info("coach: no model configured; answering offline from templates")
	}
	interventions := promauto.With(cfg.Metrics).NewCounterVec(prometheus.CounterOpts{
		Name: "pods_coach_interventions_total",
		Help: "Coach interventions completed on this node, by trigger (quiet, conflict, reminder) and source of the text (model, or offline templates).",
	}, []string{"trigger", "source"})
	return &Coach{cfg: cfg, log: cfg.Logger, scorer: NewScorer(), interventions: interventions}
}

// Run schedules every tick, and works due jobs on Workers goroutines of
// their own, until ctx ends: a slow model call holds up neither the scans
// (scoring, conflicts) nor the jobs of other pods.
func (c *Coach) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() { c.every(ctx, "working", c.work) })
	}
	c.every(ctx, "scheduling", c.schedule)
	wg.Wait()
}

// every runs step at once and then every tick until ctx ends.
func (c *Coach) every(ctx context.Context, what string, step func(context.Context) error) {
	tick := time.NewTicker(c.cfg.Tick)
	defer tick.Stop()
	for {
		if err := step(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("coach: "+what+" failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Step schedules new jobs (if no other node is scheduling) and works the
// due ones, also when scheduling failed: Run's work in one call, for tests.
func (c *Coach) Step(ctx context.Context) error {
	return errors.Join(c.schedule(ctx), c.work(ctx))
}

// schedule turns triggers into jobs.
func (c *Coach) schedule(ctx context.Context) error {
	now := c.cfg.Now()
	scanned, scoreFrom, pruned := c.scanned, c.scoreFrom, c.pruned
	locked, err := db.CoachLock(ctx, c.cfg.Pool, func(tx db.Tx) error {
		if now.Sub(c.pruned) >= pruneInterval {
			before := now.Add(-max(jobRetention, c.cfg.Cooldown, c.cfg.ConflictWindow))
			n, err := db.PruneCoachJobs(ctx, tx, before, pruneLimit)
			if err != nil {
				return err
			}
			if n < pruneLimit { // else more are left: again at the next tick
				pruned = now
			}
		}
		if now.Sub(c.scanned) >= c.cfg.ScanInterval {
			if _, err := db.EnqueueQuietJobs(ctx, tx, now, c.cfg.QuietAfter); err != nil {
				return err
			}
			if err := c.enqueueReminders(ctx, tx, now); err != nil {
				return err
			}
			scanned = now
		}
		var err error
		scoreFrom, err = c.findConflicts(ctx, tx, now)
		return err
	})
	if locked && err == nil { // what the transaction did is committed
		c.scanned, c.scoreFrom, c.pruned = scanned, scoreFrom, pruned
	}
	return err
}

// enqueueReminders runs the reminder scan in a savepoint: a scan that
// fails on one member's data (a time zone this database does not know,
// say, from one with newer zone data) is logged, and the quiet and
// conflict scans of the transaction go on.
func (c *Coach) enqueueReminders(ctx context.Context, tx db.Tx, now time.Time) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if _, err := db.EnqueueReminderJobs(ctx, sp, now); err != nil {
		if ctx.Err() != nil { // shutting down
			return err
		}
		c.log.Error("coach: reminder scan failed", "err", err)
		return sp.Rollback(ctx)
	}
	return sp.Commit(ctx)
}

// findConflicts scores the recent messages not scored yet and enqueues a
// conflict job for each pod whose last messages turned hostile. It returns
// where the next scan starts: every message it did not see is stamped at
// or after that time.
func (c *Coach) findConflicts(ctx context.Context, tx db.Tx, now time.Time) (time.Time, error) {
	since := now.Add(-c.cfg.ConflictWindow)
	start := since
	if c.scoreFrom.After(start) {
		start = c.scoreFrom
	}
	horizon, err := db.WriteHorizon(ctx, tx, scoreSlack)
	if err != nil {
		return c.scoreFrom, err
	}
	hostilePods := make(map[string]bool)
	from, next := start, horizon
	for range scoreBatchesPerTick {
		msgs, err := db.UnscoredMessages(ctx, tx, from, scoreBatch)
		if err != nil {
			return c.scoreFrom, err
		}
		if err := c.score(ctx, tx, msgs, hostilePods); err != nil {
			return c.scoreFrom, err
		}
		if len(msgs) < scoreBatch {
			next = horizon
			break
		}
		// More may be waiting from the last one on.
		from = msgs[len(msgs)-1].CreatedAt
		next = horizon
		if from.Before(horizon) {
			next = from
		}
	}
	if next.Before(start) {
		next = start
	}
	for podID := range hostilePods {
		recent, err := db.RecentScores(ctx, tx, podID, since, c.cfg.ConflictOf)
		if err != nil {
			return c.scoreFrom, err
		}
		hostile := 0
		for _, s := range recent {
			if s.Hostile {
				hostile++
			}
		}
		if len(recent) > 0 && recent[0].Hostile && hostile >= c.cfg.ConflictHostile {
			if _, err := db.EnqueueConflictJob(ctx, tx, podID, now, now.Add(-c.cfg.Cooldown), recent); err != nil {
				return c.scoreFrom, err
			}
		}
	}
	return next, nil
}

// score scores msgs, saves the scores and adds the pods of hostile ones to
// hostilePods.
func (c *Coach) score(ctx context.Context, tx db.Tx, msgs []db.UnscoredMessage, hostilePods map[string]bool) error {
	if len(msgs) == 0 {
		return nil
	}
	scores := make([]db.MessageScore, len(msgs))
	for i, m := range msgs {
		compound, hostility := c.scorer.Score(m.Body)
		scores[i] = db.MessageScore{MessageID: m.ID, Compound: compound, Hostility: hostility, Hostile: hostility >= HostileThreshold}
		if scores[i].Hostile {
			hostilePods[m.PodID] = true
		}
	}
	return db.SaveScores(ctx, tx, msgs, scores)
}

// jobsPerTick is how many jobs a node runs at most per tick. It claims
// them one at a time, so that a claim's lease covers one job's model calls.
const jobsPerTick = 10

// work runs the due jobs this node can claim.
func (c *Coach) work(ctx context.Context) error {
	for range jobsPerTick {
		jobs, err := db.ClaimCoachJobs(ctx, c.cfg.Pool, c.cfg.Now(), time.Minute, 1)
		if err != nil || len(jobs) == 0 {
			return err
		}
		job := jobs[0]
		err = c.run(ctx, job)
		if errors.Is(err, db.ErrJobDone) {
			continue
		}
		if err != nil && ctx.Err() != nil {
			// Shutting down: another node takes the job up at once, and
			// this attempt does not count.
			release, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return errors.Join(ctx.Err(), db.CoachJobRelease(release, c.cfg.Pool, job))
		}
		if err != nil {
			final := job.Attempts >= maxAttempts || errors.Is(err, db.ErrNotFound)
			retryAt := c.cfg.Now().Add(time.Duration(job.Attempts*job.Attempts) * 10 * time.Second)
			c.log.Warn("coach: job failed", "job", job.Key, "attempt", job.Attempts, "final", final, "err", err)
			if err := db.CoachJobFailed(ctx, c.cfg.Pool, job.ID, err, retryAt, final); err != nil {
				return err
			}
		}
	}
	return nil
}

// run speaks for one job.
func (c *Coach) run(ctx context.Context, job db.CoachJob) error {
	// Spare the model a job that is over; Intervene checks again.
	if due, err := db.CoachJobDue(ctx, c.cfg.Pool, job); err != nil || !due {
		if err != nil {
			return err
		}
		c.log.Info("coach: job no longer due", "job", job.Key)
		if err := db.CoachJobSkip(ctx, c.cfg.Pool, job.ID); err != nil {
			return err
		}
		return db.ErrJobDone
	}
	pod, err := db.LoadCoachContext(ctx, c.cfg.Pool, job.PodID, 10)
	if err != nil {
		return err
	}
	req := Request{Trigger: job.Kind, Pod: pod}
	var scores []byte
	switch job.Kind {
	case db.JobReminder:
		var p struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return fmt.Errorf("decoding reminder: %w", err)
		}
		if req.Member, err = db.DisplayName(ctx, c.cfg.Pool, p.UserID); err != nil {
			return err
		}
	case db.JobConflict:
		scores = job.Payload
	}
	start := time.Now()
	text, source, err := respond(ctx, c.cfg.Model, c.scorer, c.log, req)
	if err != nil {
		return err
	}
	latency := time.Since(start)
	msg, err := db.Intervene(ctx, c.cfg.Pool, db.Intervention{
		Job: job, Body: text, Source: source, LatencyMS: int(latency.Milliseconds()), Scores: scores,
	}, idempotencyKey(job.Key))
	if err != nil {
		return err
	}
	c.interventions.WithLabelValues(job.Kind, source).Inc()
	c.log.Info("coach: intervened", "pod", job.PodID, "trigger", job.Kind, "source", source,
		"latency", latency, "message", msg.ID)
	return nil
}

// idempotencyKey derives the coach message's key from the job's key.
func idempotencyKey(jobKey string) string {
	sum := sha256.Sum256([]byte(jobKey))
	return "coach-" + hex.EncodeToString(sum[:16])
}
