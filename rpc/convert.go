package rpc

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pods-dev/pods/db"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// The functions below turn rows of the db package into API messages.

func userProto(u db.User) *podsv1.User {
	return &podsv1.User{Id: u.ID, Handle: u.Handle, DisplayName: u.DisplayName, Timezone: u.Timezone, Coach: u.Coach}
}

var roleProtos = map[string]podsv1.MemberRole{
	db.RoleOwner:  podsv1.MemberRole_MEMBER_ROLE_OWNER,
	db.RoleMember: podsv1.MemberRole_MEMBER_ROLE_MEMBER,
	db.RoleCoach:  podsv1.MemberRole_MEMBER_ROLE_COACH,
}

// MemberProto converts a pod member.
func MemberProto(m db.Member) *podsv1.Member {
	return &podsv1.Member{User: userProto(m.User), Role: roleProtos[m.Role], JoinedAt: timestamppb.New(m.JoinedAt)}
}

func podProto(p db.Pod) *podsv1.Pod {
	members := make([]*podsv1.Member, len(p.Members))
	for i, m := range p.Members {
		members[i] = MemberProto(m)
	}
	return &podsv1.Pod{
		Id: p.ID, Name: p.Name, Habit: p.Habit, Capacity: int32(p.Capacity), InviteCode: p.InviteCode,
		Members: members, OwnerId: p.OwnerID, CreatedAt: timestamppb.New(p.CreatedAt),
	}
}

// PodSummaryProto converts a pod as one member sees it.
func PodSummaryProto(s db.PodSummary) *podsv1.PodSummary {
	return &podsv1.PodSummary{Pod: podProto(s.Pod), UnreadCount: s.UnreadCount, LastSeq: s.Pod.LastSeq, ReadSeq: s.ReadSeq}
}

// MessageProto converts a message.
func MessageProto(m db.Message) *podsv1.Message {
	reactions := make([]*podsv1.ReactionSummary, len(m.Reactions))
	for i, r := range m.Reactions {
		reactions[i] = &podsv1.ReactionSummary{Emoji: r.Emoji, UserIds: r.UserIDs}
	}
	return &podsv1.Message{
		Id: m.ID, PodId: m.PodID, Seq: m.Seq, AuthorId: m.AuthorID, Body: m.Body, Humor: m.Humor,
		IdempotencyKey: m.IdempotencyKey, CreatedAt: timestamppb.New(m.CreatedAt),
		EditedAt: optionalTime(m.EditedAt), Reactions: reactions,
	}
}

func optionalTime(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
