package rpc

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// podService implements PodService.
type podService struct {
	*Server
}

var errPodNotFound = connect.NewError(connect.CodeNotFound, errors.New("pod not found, or you are not a member"))

// CreatePod creates a pod with the caller as owner.
func (s podService) CreatePod(ctx context.Context, req *connect.Request[podsv1.CreatePodRequest]) (*connect.Response[podsv1.CreatePodResponse], error) {
	m := req.Msg
	if err := checkLine("name", m.Name, maxPodNameLen); err != nil {
		return nil, err
	}
	if err := checkLine("habit", m.Habit, maxHabitLen); err != nil {
		return nil, err
	}
	capacity := int(m.Capacity)
	if capacity == 0 {
		capacity = 6
	}
	if capacity < 4 || capacity > 6 {
		return nil, invalid("capacity", "must be between 4 and 6")
	}
	if err := checkIdempotencyKey(m.IdempotencyKey, false); err != nil {
		return nil, err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	pod, err := db.PodCreate(ctx, s.pool, db.PodCreateParams{
		Name: strings.TrimSpace(m.Name), Habit: strings.TrimSpace(m.Habit), Capacity: capacity,
		OwnerID: UserID(ctx), IdempotencyKey: m.IdempotencyKey,
	})
	if errors.Is(err, db.ErrNotFound) { // the pod of this key, which the caller left
		return nil, errPodNotFound
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.CreatePodResponse{Pod: convert.Pod(pod)}), nil
}

// JoinPod adds the caller to the pod with the invite code.
func (s podService) JoinPod(ctx context.Context, req *connect.Request[podsv1.JoinPodRequest]) (*connect.Response[podsv1.JoinPodResponse], error) {
	code := strings.ToUpper(strings.TrimSpace(req.Msg.InviteCode))
	if code == "" {
		return nil, invalid("invite_code", "is required")
	}
	if err := checkOptionalText("invite_code", code, maxInviteCodeLen); err != nil {
		return nil, err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	pod, err := db.PodJoin(ctx, s.pool, code, UserID(ctx))
	if errors.Is(err, db.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no pod has this invite code"))
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.JoinPodResponse{Pod: convert.Pod(pod)}), nil
}

// LeavePod removes the caller from a pod.
func (s podService) LeavePod(ctx context.Context, req *connect.Request[podsv1.LeavePodRequest]) (*connect.Response[podsv1.LeavePodResponse], error) {
	podID, err := checkID("pod_id", req.Msg.PodId)
	if err != nil {
		return nil, err
	}
	if err := db.PodLeave(ctx, s.pool, podID, UserID(ctx)); err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.LeavePodResponse{}), nil
}

// DeletePod deletes a pod and all it holds; owner only.
func (s podService) DeletePod(ctx context.Context, req *connect.Request[podsv1.DeletePodRequest]) (*connect.Response[podsv1.DeletePodResponse], error) {
	podID, err := checkID("pod_id", req.Msg.PodId)
	if err != nil {
		return nil, err
	}
	err = db.PodDelete(ctx, s.pool, podID, UserID(ctx))
	if errors.Is(err, db.ErrNotFound) {
		return nil, errPodNotFound
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.DeletePodResponse{}), nil
}

// ListPods lists the caller's pods with unread counts.
func (s podService) ListPods(ctx context.Context, _ *connect.Request[podsv1.ListPodsRequest]) (*connect.Response[podsv1.ListPodsResponse], error) {
	summaries, err := db.PodsOfUser(ctx, s.pool, UserID(ctx))
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	pods := make([]*podsv1.PodSummary, len(summaries))
	for i, sum := range summaries {
		pods[i] = convert.PodSummary(sum)
	}
	return connect.NewResponse(&podsv1.ListPodsResponse{Pods: pods}), nil
}

// SetCoach switches the pod's coach on or off; owner only.
func (s podService) SetCoach(ctx context.Context, req *connect.Request[podsv1.SetCoachRequest]) (*connect.Response[podsv1.SetCoachResponse], error) {
	podID, err := checkID("pod_id", req.Msg.PodId)
	if err != nil {
		return nil, err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	err = db.PodSetCoach(ctx, s.pool, podID, UserID(ctx), req.Msg.Enabled)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errPodNotFound
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	pod, err := db.PodByID(ctx, s.pool, podID)
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.SetCoachResponse{Pod: convert.Pod(pod)}), nil
}
