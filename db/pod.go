package db

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Member roles as stored in memberships.role.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
	RoleCoach  = "coach"
)

// ErrPodFull means the pod has no free seat.
var ErrPodFull = errors.New("pod is full")

// Pod is a pod with its members.
type Pod struct {
	ID         string
	Name       string
	Habit      string
	Capacity   int
	InviteCode string
	OwnerID    string
	LastSeq    int64
	CreatedAt  time.Time
	// CoachEnabled says whether the coach speaks in the pod.
	CoachEnabled bool
	// Members in the order they joined.
	Members []Member
}

// Member is one member of a pod.
type Member struct {
	User     User
	Role     string
	JoinedAt time.Time
	Online   bool // when read
}

// PodSummary is a pod as one member sees it.
type PodSummary struct {
	Pod         Pod
	ReadSeq     int64
	UnreadCount int64
	JoinedSeq   int64 // the seq of the user's memberJoined event
}

// PodCreateParams are the fields of a new pod.
type PodCreateParams struct {
	Name     string
	Habit    string
	Capacity int
	OwnerID  string
	// IdempotencyKey, if not empty, makes a repeated create return the
	// first pod.
	IdempotencyKey string
}

// PodCreate creates a pod with its owner as first member, in one
// transaction. With an idempotency key already used by the owner, it returns
// the pod created then.
func PodCreate(ctx context.Context, pool *Pool, p PodCreateParams) (Pod, error) {
	var key *string
	if p.IdempotencyKey != "" {
		key = &p.IdempotencyKey
	}
	var podID string
	for attempt := 0; ; attempt++ {
		err := InTx(ctx, pool, func(tx Tx) error {
			err := tx.QueryRow(ctx, `
				INSERT INTO pods (name, habit, capacity, invite_code, owner_id, created_by, idempotency_key)
				VALUES ($1, $2, $3, $4, $5, $5, $6)
				RETURNING id`,
				p.Name, p.Habit, p.Capacity, newInviteCode(), p.OwnerID, key).Scan(&podID)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO memberships (pod_id, user_id, role) VALUES ($1, $2, $3)`,
				podID, p.OwnerID, RoleOwner)
			if err != nil {
				return err
			}
			// Every pod has the coach as a member.
			_, err = tx.Exec(ctx, `INSERT INTO memberships (pod_id, user_id, role)
				SELECT $1, id, $2 FROM users WHERE coach`, podID, RoleCoach)
			return err
		})
		switch constraint := uniqueViolation(err); constraint {
		case "":
			if err != nil {
				return Pod{}, translate(err, "creating pod")
			}
			return PodByID(ctx, pool, podID)
		case "pods_created_by_idempotency_key_key":
			return podCreatedBefore(ctx, pool, p)
		default: // an invite code collision: draw another
			if attempt == 5 {
				return Pod{}, translate(err, "creating pod")
			}
		}
	}
}

// podCreatedBefore returns the pod that p's creator made with p's
// idempotency key: ErrIdempotencyMismatch if it was made with other
// values, ErrNotFound if the creator is no longer in it.
func podCreatedBefore(ctx context.Context, pool *Pool, p PodCreateParams) (Pod, error) {
	var podID, name, habit string
	var capacity int
	var member bool
	err := pool.QueryRow(ctx, `
		SELECT id, name, habit, capacity, EXISTS (SELECT 1 FROM memberships m WHERE m.pod_id = p.id AND m.user_id = $1)
		FROM pods p WHERE created_by = $1 AND idempotency_key = $2`,
		p.OwnerID, p.IdempotencyKey).Scan(&podID, &name, &habit, &capacity, &member)
	switch {
	case err != nil:
		return Pod{}, translate(err, "finding pod by idempotency key")
	case name != p.Name || habit != p.Habit || capacity != p.Capacity:
		return Pod{}, ErrIdempotencyMismatch
	case !member:
		return Pod{}, ErrNotFound
	}
	return PodByID(ctx, pool, podID)
}

// inviteAlphabet has no look-alikes (0/O, 1/I/L).
const inviteAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// newInviteCode draws 8 characters: 31^8 ≈ 8.5e11 codes.
func newInviteCode() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err)) // never fails on Linux
	}
	for i := range b {
		b[i] = inviteAlphabet[int(b[i])%len(inviteAlphabet)]
	}
	return string(b)
}

const podColumns = `p.id, p.name, p.habit, p.capacity, p.invite_code, p.owner_id, p.last_seq, p.created_at, p.coach_enabled`

func scanPod(row pgx.Row, extra ...any) (Pod, error) {
	var p Pod
	dest := append([]any{&p.ID, &p.Name, &p.Habit, &p.Capacity, &p.InviteCode, &p.OwnerID, &p.LastSeq, &p.CreatedAt, &p.CoachEnabled}, extra...)
	err := row.Scan(dest...)
	return p, err
}

// PodByID returns a pod with its members.
func PodByID(ctx context.Context, q Querier, podID string) (Pod, error) {
	pod, err := scanPod(q.QueryRow(ctx, `SELECT `+podColumns+` FROM pods p WHERE p.id = $1`, podID))
	if err != nil {
		return Pod{}, translate(err, "finding pod")
	}
	pods := []*Pod{&pod}
	return pod, loadMembers(ctx, q, pods)
}

// loadMembers fills in the members of pods with one query.
func loadMembers(ctx context.Context, q Querier, pods []*Pod) error {
	if len(pods) == 0 {
		return nil
	}
	ids := make([]string, len(pods))
	for i, p := range pods {
		ids[i] = p.ID
	}
	rows, err := q.Query(ctx, `
		SELECT m.pod_id, m.role, m.joined_at, coalesce(pr.online, false), `+userColumns+`
		FROM memberships m JOIN users u ON u.id = m.user_id
		LEFT JOIN presence pr ON pr.user_id = m.user_id
		WHERE m.pod_id = ANY($1)
		ORDER BY m.joined_seq`, ids)
	return fillMembers(pods, rows, err)
}

// loadMembersOfUser fills in the members of pods, the pods of userID, with
// one query. Its plan is made once per connection: an array parameter, as
// loadMembers has, makes Postgres plan the query anew on every call (0.2
// ms, on every stream start).
func loadMembersOfUser(ctx context.Context, q Querier, userID string, pods []*Pod) error {
	rows, err := q.Query(ctx, `
		SELECT m.pod_id, m.role, m.joined_at, coalesce(pr.online, false), `+userColumns+`
		FROM memberships mine
		JOIN memberships m ON m.pod_id = mine.pod_id
		JOIN users u ON u.id = m.user_id
		LEFT JOIN presence pr ON pr.user_id = m.user_id
		WHERE mine.user_id = $1
		ORDER BY m.joined_seq`, userID)
	return fillMembers(pods, rows, err)
}

// fillMembers adds the members that rows (or err) holds to pods; members
// of other pods are left out.
func fillMembers(pods []*Pod, rows pgx.Rows, err error) error {
	if err != nil {
		return translate(err, "listing members")
	}
	defer rows.Close()
	byID := make(map[string]*Pod, len(pods))
	for _, p := range pods {
		byID[p.ID] = p
	}
	for rows.Next() {
		var podID string
		var m Member
		u := &m.User
		if err := rows.Scan(&podID, &m.Role, &m.JoinedAt, &m.Online,
			&u.ID, &u.Handle, &u.DisplayName, &u.Timezone, &u.Coach, &u.PasswordHash, &u.CreatedAt); err != nil {
			return translate(err, "scanning member")
		}
		u.PasswordHash = ""
		if p := byID[podID]; p != nil {
			p.Members = append(p.Members, m)
		}
	}
	return translate(rows.Err(), "listing members")
}

// PodJoin adds userID to the pod with inviteCode, unless already a member,
// and returns the pod. Seats are counted under the pod's row lock, so
// concurrent joins never overfill it. Unknown code: ErrNotFound; no free
// seat: ErrPodFull.
func PodJoin(ctx context.Context, pool *Pool, inviteCode, userID string) (Pod, error) {
	var podID string
	err := InTx(ctx, pool, func(tx Tx) error {
		var capacity, humans int
		var member bool
		// Lock the pod first, then count in a second statement: in READ
		// COMMITTED each statement takes a new snapshot, so the count sees
		// every join that committed before the lock was granted.
		err := tx.QueryRow(ctx, `SELECT id, capacity FROM pods WHERE invite_code = $1 FOR UPDATE`,
			inviteCode).Scan(&podID, &capacity)
		if err == nil {
			err = tx.QueryRow(ctx, `
				SELECT count(*) FILTER (WHERE role <> 'coach'), count(*) FILTER (WHERE user_id = $2) > 0
				FROM memberships WHERE pod_id = $1`, podID, userID).Scan(&humans, &member)
		}
		switch {
		case err != nil:
			return translate(err, "finding pod by invite code")
		case member:
			return nil
		case humans >= capacity:
			return ErrPodFull
		}
		_, err = tx.Exec(ctx, `INSERT INTO memberships (pod_id, user_id, role) VALUES ($1, $2, $3)`,
			podID, userID, RoleMember)
		return translate(err, "inserting membership")
	})
	if err != nil {
		return Pod{}, err
	}
	return PodByID(ctx, pool, podID)
}

// PodLeave removes userID from the pod. An owner who leaves hands the pod
// to the longest-standing human member; if none is left, the pod is
// deleted. Not being a member is not an error.
func PodLeave(ctx context.Context, pool *Pool, podID, userID string) error {
	return InTx(ctx, pool, func(tx Tx) error {
		var role string
		err := tx.QueryRow(ctx, `
			SELECT m.role FROM pods p JOIN memberships m ON m.pod_id = p.id AND m.user_id = $2
			WHERE p.id = $1 FOR UPDATE OF p`, podID, userID).Scan(&role)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return translate(err, "finding membership")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM memberships WHERE pod_id = $1 AND user_id = $2`, podID, userID); err != nil {
			return translate(err, "deleting membership")
		}
		if role != RoleOwner {
			return nil
		}
		var heir string
		err = tx.QueryRow(ctx, `
			SELECT user_id FROM memberships WHERE pod_id = $1 AND role = 'member'
			ORDER BY joined_seq LIMIT 1`, podID).Scan(&heir)
		if errors.Is(err, pgx.ErrNoRows) {
			_, err = tx.Exec(ctx, `DELETE FROM pods WHERE id = $1`, podID)
			return translate(err, "deleting empty pod")
		}
		if err != nil {
			return translate(err, "finding new owner")
		}
		if _, err := tx.Exec(ctx, `UPDATE memberships SET role = 'owner' WHERE pod_id = $1 AND user_id = $2`, podID, heir); err != nil {
			return translate(err, "promoting new owner")
		}
		_, err = tx.Exec(ctx, `UPDATE pods SET owner_id = $2 WHERE id = $1`, podID, heir)
		return translate(err, "changing owner")
	})
}

// ErrNotOwner means only the pod's owner may do this.
var ErrNotOwner = errors.New("only the pod's owner may do this")

// PodDelete deletes a pod and, by cascade, all that belongs to it. Only its
// owner may; deleting a pod the same owner already deleted succeeds. A pod
// the user is not a member of is ErrNotFound; a member who is not the owner
// gets ErrNotOwner.
func PodDelete(ctx context.Context, pool *Pool, podID, userID string) error {
	var ownerID string
	var member bool
	err := pool.QueryRow(ctx, `
		SELECT p.owner_id, EXISTS (SELECT 1 FROM memberships m WHERE m.pod_id = p.id AND m.user_id = $2)
		FROM pods p WHERE p.id = $1`, podID, userID).Scan(&ownerID, &member)
	if errors.Is(err, pgx.ErrNoRows) {
		// Gone already: a retry by the owner who deleted it succeeds.
		var deleted bool
		err = pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deleted_pods WHERE pod_id = $1 AND owner_id = $2)`,
			podID, userID).Scan(&deleted)
		if err == nil && !deleted {
			return fmt.Errorf("deleting pod: %w", ErrNotFound)
		}
		return translate(err, "finding deleted pod")
	}
	switch {
	case err != nil:
		return translate(err, "finding pod")
	case !member:
		return fmt.Errorf("deleting pod: %w", ErrNotFound)
	case ownerID != userID:
		return ErrNotOwner
	}
	return InTx(ctx, pool, func(tx Tx) error {
		// The pod's messages first, then the pod (the delete), the order in
		// which edits, reactions and message deletes lock them: the other
		// order deadlocked with them.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM messages WHERE pod_id = $1 FOR UPDATE`, podID); err != nil {
			return translate(err, "locking the pod's messages")
		}
		// The owner check and the delete are one statement, so a concurrent
		// change of owner cannot slip between them.
		tag, err := tx.Exec(ctx, `DELETE FROM pods WHERE id = $1 AND owner_id = $2`, podID, userID)
		if err == nil && tag.RowsAffected() == 0 {
			return ErrNotOwner
		}
		return translate(err, "deleting pod")
	})
}

// PodsOfUser lists the pods userID is a member of, oldest membership
// first, with members, read cursor and unread count.
func PodsOfUser(ctx context.Context, q Querier, userID string) ([]PodSummary, error) {
	rows, err := q.Query(ctx, `
		SELECT `+podColumns+`, m.read_seq,
			(SELECT count(*) FROM messages x
			 WHERE x.pod_id = p.id AND x.seq > m.read_seq AND x.author_id <> m.user_id),
			m.joined_seq
		FROM memberships m JOIN pods p ON p.id = m.pod_id
		WHERE m.user_id = $1
		ORDER BY m.joined_at, p.id`, userID)
	if err != nil {
		return nil, translate(err, "listing pods")
	}
	var summaries []PodSummary
	for rows.Next() {
		var s PodSummary
		s.Pod, err = scanPod(rows, &s.ReadSeq, &s.UnreadCount, &s.JoinedSeq)
		if err != nil {
			rows.Close()
			return nil, translate(err, "scanning pod")
		}
		summaries = append(summaries, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err, "listing pods")
	}
	pods := make([]*Pod, len(summaries))
	for i := range summaries {
		pods[i] = &summaries[i].Pod
	}
	if err := loadMembersOfUser(ctx, q, userID, pods); err != nil {
		return nil, err
	}
	// A pod without members (the coach is in every pod) was left between
	// the two queries.
	return slices.DeleteFunc(summaries, func(s PodSummary) bool { return len(s.Pod.Members) == 0 }), nil
}

// IsMember reports whether userID is a member of podID.
func IsMember(ctx context.Context, q Querier, podID, userID string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM memberships WHERE pod_id = $1 AND user_id = $2)`,
		podID, userID).Scan(&ok)
	return ok, translate(err, "checking membership")
}

// PodSetCoach switches the pod's coach on or off; owner only. A pod the
// user is not a member of is ErrNotFound.
func PodSetCoach(ctx context.Context, q Querier, podID, userID string, enabled bool) error {
	var ownerID string
	err := q.QueryRow(ctx, `
		SELECT p.owner_id FROM pods p JOIN memberships m ON m.pod_id = p.id AND m.user_id = $2
		WHERE p.id = $1`, podID, userID).Scan(&ownerID)
	if err != nil {
		return translate(err, "finding pod")
	}
	if ownerID != userID {
		return ErrNotOwner
	}
	_, err = q.Exec(ctx, `UPDATE pods SET coach_enabled = $3 WHERE id = $1 AND owner_id = $2`, podID, userID, enabled)
	return translate(err, "switching the coach")
}
