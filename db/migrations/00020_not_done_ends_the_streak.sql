-- A check-in saying "not done" ends the member's current streak: a member
-- who reports a cigarette today has no streak until a day is done again.
-- Before, the run that ended yesterday stayed current all of today.

-- +goose Up
-- +goose StatementBegin
-- pods_streak counts a member's runs of consecutive done dates in a pod
-- (gaps and islands: date minus rank is constant within a run). current is
-- the run that reaches p_today or yesterday and has no "not done" check-in
-- after it; longest is the longest run ever. A member who moved west may
-- hold dates up to two days past their new today (time zones span 26
-- hours): a run of such dates is current too.
CREATE OR REPLACE FUNCTION pods_streak(p_pod uuid, p_user uuid, p_today date, OUT current int, OUT longest int)
LANGUAGE sql STABLE AS $$
    WITH runs AS (
        SELECT min(date) AS first, max(date) AS last, count(*)::int AS days
        FROM (
            SELECT date, date - (row_number() OVER (ORDER BY date))::int AS island
            FROM check_ins WHERE pod_id = p_pod AND user_id = p_user AND done
        ) d
        GROUP BY island
    )
    SELECT coalesce((SELECT days FROM runs r WHERE last >= p_today - 1 AND first <= p_today + 2
                     AND NOT EXISTS (SELECT FROM check_ins c WHERE c.pod_id = p_pod AND c.user_id = p_user
                                     AND NOT c.done AND c.date > r.last)
                     ORDER BY last LIMIT 1), 0),
           coalesce((SELECT max(days) FROM runs), 0)
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pods_streak(p_pod uuid, p_user uuid, p_today date, OUT current int, OUT longest int)
LANGUAGE sql STABLE AS $$
    WITH runs AS (
        SELECT min(date) AS first, max(date) AS last, count(*)::int AS days
        FROM (
            SELECT date, date - (row_number() OVER (ORDER BY date))::int AS island
            FROM check_ins WHERE pod_id = p_pod AND user_id = p_user AND done
        ) d
        GROUP BY island
    )
    SELECT coalesce((SELECT days FROM runs WHERE last >= p_today - 1 AND first <= p_today + 2
                     ORDER BY last LIMIT 1), 0),
           coalesce((SELECT max(days) FROM runs), 0)
$$;
-- +goose StatementEnd
