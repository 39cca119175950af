-- Progress: check-ins announce themselves in the pod's log with the
-- member's streak, and every member has a local time at which the coach
-- reminds them to check in.
--
-- Dates are civil dates in the member's time zone, stored as they were
-- given: streaks are counted over dates, never over 24-hour periods, so DST
-- changes cannot break them, and a member who changes time zone keeps the
-- dates they already have.

-- +goose Up
ALTER TABLE check_ins ADD CONSTRAINT check_ins_note_length CHECK (char_length(note) <= 500);

-- When the coach reminds the member, in their local time, if they have not
-- checked in that day.
ALTER TABLE memberships ADD COLUMN reminder_time time NOT NULL DEFAULT '20:00';

-- +goose StatementBegin
-- pods_streak counts a member's runs of consecutive done dates in a pod
-- (gaps and islands: date minus rank is constant within a run). current is
-- the run that reaches p_today or yesterday; longest is the longest run
-- ever. A member who moved west may hold dates up to two days past their
-- new today (time zones span 26 hours): a run of such dates is current too.
CREATE FUNCTION pods_streak(p_pod uuid, p_user uuid, p_today date, OUT current int, OUT longest int)
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

-- +goose StatementBegin
-- A new or changed check-in becomes a check_in_recorded event carrying the
-- check-in and the member's streak as of their local today. The pod row is
-- locked first (pods_emit would lock it anyway), so the streak is counted
-- after every earlier check-in of the pod has committed: events carry
-- streaks in commit order.
CREATE FUNCTION check_ins_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    today date;
    s record;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.done = NEW.done AND OLD.note = NEW.note THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM pods WHERE id = NEW.pod_id FOR NO KEY UPDATE;
    SELECT (now() AT TIME ZONE timezone)::date INTO today FROM users WHERE id = NEW.user_id;
    SELECT * INTO s FROM pods_streak(NEW.pod_id, NEW.user_id, today);
    PERFORM pods_emit(NEW.pod_id, 'check_in_recorded', NULL, NEW.user_id,
        jsonb_build_object('pod_id', NEW.pod_id, 'user_id', NEW.user_id,
                           'date', to_char(NEW.date, 'YYYY-MM-DD'), 'done', NEW.done,
                           'note', NEW.note, 'updated_at', NEW.updated_at,
                           'streak', jsonb_build_object('current', s.current, 'longest', s.longest)));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER check_ins_after_write AFTER INSERT OR UPDATE ON check_ins
    FOR EACH ROW EXECUTE FUNCTION check_ins_after_write();

-- +goose Down
DROP TRIGGER check_ins_after_write ON check_ins;
DROP FUNCTION check_ins_after_write, pods_streak;
ALTER TABLE memberships DROP COLUMN reminder_time;
ALTER TABLE check_ins DROP CONSTRAINT check_ins_note_length;
