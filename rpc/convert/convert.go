// Package convert turns rows of the db package into API messages.
package convert

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pods-dev/pods/db"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// User converts a user.
func User(u db.User) *podsv1.User {
	return &podsv1.User{Id: u.ID, Handle: u.Handle, DisplayName: u.DisplayName, Timezone: u.Timezone, Coach: u.Coach}
}

var roleProtos = map[string]podsv1.MemberRole{
	db.RoleOwner:  podsv1.MemberRole_MEMBER_ROLE_OWNER,
	db.RoleMember: podsv1.MemberRole_MEMBER_ROLE_MEMBER,
	db.RoleCoach:  podsv1.MemberRole_MEMBER_ROLE_COACH,
}

// Member converts a pod member.
func Member(m db.Member) *podsv1.Member {
	return &podsv1.Member{User: User(m.User), Role: roleProtos[m.Role], JoinedAt: timestamppb.New(m.JoinedAt)}
}

// Pod converts a pod with its members.
func Pod(p db.Pod) *podsv1.Pod {
	members := make([]*podsv1.Member, len(p.Members))
	for i, m := range p.Members {
		members[i] = Member(m)
	}
	return &podsv1.Pod{
		Id: p.ID, Name: p.Name, Habit: p.Habit, Capacity: int32(p.Capacity), InviteCode: p.InviteCode,
		Members: members, OwnerId: p.OwnerID, CreatedAt: timestamppb.New(p.CreatedAt), CoachEnabled: p.CoachEnabled,
	}
}

// PodSummary converts a pod as one member sees it.
func PodSummary(s db.PodSummary) *podsv1.PodSummary {
	return &podsv1.PodSummary{Pod: Pod(s.Pod), UnreadCount: s.UnreadCount, LastSeq: s.Pod.LastSeq, ReadSeq: s.ReadSeq}
}

// Message converts a message.
func Message(m db.Message) *podsv1.Message {
	reactions := make([]*podsv1.ReactionSummary, len(m.Reactions))
	for i, r := range m.Reactions {
		reactions[i] = &podsv1.ReactionSummary{Emoji: r.Emoji, UserIds: r.UserIDs}
	}
	return &podsv1.Message{
		Id: m.ID, PodId: m.PodID, Seq: m.Seq, AuthorId: m.AuthorID, Body: m.Body, Humor: m.Humor,
		IdempotencyKey: m.IdempotencyKey, CreatedAt: timestamppb.New(m.CreatedAt),
		EditedAt: optionalTime(m.EditedAt), Reactions: reactions, CoachTrigger: coachTriggers[m.CoachTrigger],
	}
}

// CheckIn converts a check-in.
func CheckIn(c db.CheckIn) *podsv1.CheckIn {
	return &podsv1.CheckIn{
		PodId: c.PodID, UserId: c.UserID, Date: c.Date, Done: c.Done, Note: c.Note,
		UpdatedAt: timestamppb.New(c.UpdatedAt),
	}
}

// Streak converts a streak.
func Streak(s db.Streak) *podsv1.Streak {
	return &podsv1.Streak{Current: int32(s.Current), Longest: int32(s.Longest)}
}

func optionalTime(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// Event converts a row of the event log. Kinds it does not know (written
// by a newer server) are an error.
func Event(e db.Event) (*podsv1.Event, error) {
	out := &podsv1.Event{PodId: e.PodID, Seq: e.Seq, At: timestamppb.New(e.CreatedAt)}
	var p eventPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return nil, fmt.Errorf("decoding %s event %s/%d: %w", e.Kind, e.PodID, e.Seq, err)
	}
	switch e.Kind {
	case db.EventMessageCreated, db.EventMessageEdited:
		var m db.Message
		if err := json.Unmarshal(e.Payload, &m); err != nil {
			return nil, fmt.Errorf("decoding %s event %s/%d: %w", e.Kind, e.PodID, e.Seq, err)
		}
		if e.Kind == db.EventMessageCreated {
			out.Kind = &podsv1.Event_MessageCreated{MessageCreated: &podsv1.MessageCreated{Message: Message(m)}}
		} else {
			out.Kind = &podsv1.Event_MessageEdited{MessageEdited: &podsv1.MessageEdited{Message: Message(m)}}
		}
	case db.EventMessageDeleted:
		out.Kind = &podsv1.Event_MessageDeleted{MessageDeleted: &podsv1.MessageDeleted{MessageId: p.MessageID}}
	case db.EventReactionAdded:
		out.Kind = &podsv1.Event_ReactionAdded{ReactionAdded: &podsv1.ReactionChanged{MessageId: p.MessageID, UserId: p.UserID, Emoji: p.Emoji}}
	case db.EventReactionRemoved:
		out.Kind = &podsv1.Event_ReactionRemoved{ReactionRemoved: &podsv1.ReactionChanged{MessageId: p.MessageID, UserId: p.UserID, Emoji: p.Emoji}}
	case db.EventMemberJoined:
		member := db.Member{
			User: db.User{ID: p.UserID, Handle: p.Handle, DisplayName: p.DisplayName, Timezone: p.Timezone, Coach: p.Coach},
			Role: p.Role, JoinedAt: p.JoinedAt,
		}
		out.Kind = &podsv1.Event_MemberJoined{MemberJoined: &podsv1.MemberJoined{UserId: p.UserID, Member: Member(member)}}
	case db.EventMemberLeft:
		out.Kind = &podsv1.Event_MemberLeft{MemberLeft: &podsv1.MemberLeft{UserId: p.UserID}}
	case db.EventCheckInRecorded:
		var c struct {
			db.CheckIn
			Streak db.Streak `json:"streak"`
		}
		if err := json.Unmarshal(e.Payload, &c); err != nil {
			return nil, fmt.Errorf("decoding %s event %s/%d: %w", e.Kind, e.PodID, e.Seq, err)
		}
		out.Kind = &podsv1.Event_CheckInRecorded{CheckInRecorded: &podsv1.CheckInRecorded{CheckIn: CheckIn(c.CheckIn), Streak: Streak(c.Streak)}}
	case db.EventCoachIntervened:
		out.Kind = &podsv1.Event_CoachIntervened{CoachIntervened: &podsv1.CoachIntervened{
			MessageId: p.MessageID, Trigger: coachTriggers[p.Trigger]}}
	case db.EventCoachSwitched:
		out.Kind = &podsv1.Event_CoachSwitched{CoachSwitched: &podsv1.CoachSwitched{Enabled: p.Enabled}}
	case db.EventOwnerChanged:
		out.Kind = &podsv1.Event_OwnerChanged{OwnerChanged: &podsv1.OwnerChanged{UserId: p.UserID}}
	default:
		return nil, fmt.Errorf("event %s/%d: unknown kind %q", e.PodID, e.Seq, e.Kind)
	}
	return out, nil
}

// eventPayload holds the fields the triggers put into payloads other than
// whole messages.
type eventPayload struct {
	MessageID   string    `json:"message_id"`
	UserID      string    `json:"user_id"`
	Emoji       string    `json:"emoji"`
	Handle      string    `json:"handle"`
	DisplayName string    `json:"display_name"`
	Timezone    string    `json:"timezone"`
	Coach       bool      `json:"coach"`
	Role        string    `json:"role"`
	JoinedAt    time.Time `json:"joined_at"`
	Enabled     bool      `json:"enabled"`
	Trigger     string    `json:"trigger"`
}

var coachTriggers = map[string]podsv1.CoachTrigger{
	db.JobQuiet:    podsv1.CoachTrigger_COACH_TRIGGER_QUIET,
	db.JobConflict: podsv1.CoachTrigger_COACH_TRIGGER_CONFLICT,
	db.JobReminder: podsv1.CoachTrigger_COACH_TRIGGER_REMINDER,
}
