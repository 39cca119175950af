package rpc

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// Limits of check-ins.
const (
	maxNoteLen         = 500
	maxCheckInDaysBack = 7
)

// dateLayout is a civil date. Parsed dates are midnight UTC, where AddDate
// moves by calendar days: no DST, no 24-hour arithmetic.
const dateLayout = "2006-01-02"

// progressService implements ProgressService.
type progressService struct {
	*Server
}

// CheckIn records the caller's check-in for a date in their time zone.
func (s progressService) CheckIn(ctx context.Context, req *connect.Request[podsv1.CheckInRequest]) (*connect.Response[podsv1.CheckInResponse], error) {
	m := req.Msg
	podID, err := checkID("pod_id", m.PodId)
	if err != nil {
		return nil, err
	}
	if err := checkOptionalText("note", m.Note, maxNoteLen); err != nil {
		return nil, err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	date, err := s.checkDate(ctx, m.Date)
	if err != nil {
		return nil, err
	}
	c, streak, err := db.CheckInUpsert(ctx, s.pool, db.CheckIn{
		PodID: podID, UserID: UserID(ctx), Date: date, Done: m.Done, Note: m.Note,
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil, errPodNotFound
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.CheckInResponse{CheckIn: convert.CheckIn(c), Streak: convert.Streak(streak)}), nil
}

// checkDate validates a check-in date (YYYY-MM-DD, empty for today) against
// the caller's local today: not in the future, at most 7 days back.
func (s progressService) checkDate(ctx context.Context, date string) (string, error) {
	today, err := db.LocalToday(ctx, s.pool, UserID(ctx))
	if err != nil {
		return "", toConnect(ctx, s.logger, err)
	}
	if date == "" {
		return today, nil
	}
	d, err := time.Parse(dateLayout, date)
	if err != nil {
		return "", invalid("date", "must be a date as YYYY-MM-DD")
	}
	t, err := time.Parse(dateLayout, today)
	if err != nil {
		return "", toConnect(ctx, s.logger, err)
	}
	switch {
	case d.After(t):
		return "", invalid("date", "must not be in the future")
	case d.Before(t.AddDate(0, 0, -maxCheckInDaysBack)):
		return "", invalid("date", "must be at most 7 days back")
	}
	return date, nil
}

// GetProgress gives every member of the pod their streaks and last 30 days.
func (s progressService) GetProgress(ctx context.Context, req *connect.Request[podsv1.GetProgressRequest]) (*connect.Response[podsv1.GetProgressResponse], error) {
	podID, err := checkID("pod_id", req.Msg.PodId)
	if err != nil {
		return nil, err
	}
	if ok, err := db.IsMember(ctx, s.pool, podID, UserID(ctx)); err != nil || !ok {
		if err != nil {
			return nil, toConnect(ctx, s.logger, err)
		}
		return nil, errPodNotFound
	}
	progress, err := db.Progress(ctx, s.pool, podID)
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	members := make([]*podsv1.MemberProgress, len(progress))
	for i, p := range progress {
		recent := make([]*podsv1.CheckIn, len(p.Recent))
		for j, c := range p.Recent {
			recent[j] = convert.CheckIn(c)
		}
		members[i] = &podsv1.MemberProgress{
			UserId: p.UserID, Streak: convert.Streak(p.Streak), Recent: recent, ReminderTime: p.ReminderTime,
		}
	}
	return connect.NewResponse(&podsv1.GetProgressResponse{Members: members}), nil
}

// SetReminder sets when, in the caller's local time, the coach reminds
// them to check in.
func (s progressService) SetReminder(ctx context.Context, req *connect.Request[podsv1.SetReminderRequest]) (*connect.Response[podsv1.SetReminderResponse], error) {
	m := req.Msg
	podID, err := checkID("pod_id", m.PodId)
	if err != nil {
		return nil, err
	}
	// The layout alone would also take "7:30".
	if _, err := time.Parse("15:04", m.Time); err != nil || len(m.Time) != len("15:04") {
		return nil, invalid("time", "must be HH:MM, 24-hour, such as 07:30")
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	err = db.SetReminderTime(ctx, s.pool, podID, UserID(ctx), m.Time)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errPodNotFound
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.SetReminderResponse{Time: m.Time}), nil
}
