// Package moderator will hold the coach: the AI member of every pod that
// nudges quiet pods and calms conflicts (never on humor), from durable jobs
// in Postgres so it acts exactly once across nodes, with an offline
// responder when no model is configured.
package moderator
