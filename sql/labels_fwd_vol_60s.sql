-- labels_fwd_vol_60s: forward realized volatility of mid-price log returns over (t, t + $horizon_s].
-- grain: one row per (product_id, event_timestamp) on a grid every $every_s seconds in [$start, $end)
-- time column: event_timestamp (the label's time t; the features are joined as of t)
-- window: (t, t + horizon], built only from ticks strictly after t: a return counts only when both of
--   its ticks are after t, so nothing known at t leaks in and nothing of the label is known at t.
-- Rows whose horizon is not covered by data (no tick at or after t + horizon, or fewer than two
-- returns inside it) are dropped rather than labeled calm.
-- Parameters: $start, $end (TIMESTAMPTZ), $every_s, $horizon_s (seconds).
WITH returns AS (
    SELECT
        product_id,
        event_time,
        lag(event_time) OVER p AS prev_time,
        ln(best_bid::DOUBLE + best_ask::DOUBLE) - ln(lag(best_bid::DOUBLE + best_ask::DOUBLE) OVER p) AS ret
    FROM ticks
    WHERE event_time >= $start AND event_time < $end + to_seconds($horizon_s::DOUBLE) * 2
    WINDOW p AS (PARTITION BY product_id ORDER BY event_time, sequence, tick_id)
),
coverage AS (
    SELECT product_id, max(event_time) AS last_tick FROM returns GROUP BY ALL
),
grid AS (
    SELECT c.product_id, g.range AS t
    FROM coverage AS c
    CROSS JOIN range($start::TIMESTAMPTZ, $end::TIMESTAMPTZ, to_microseconds(($every_s * 1e6)::BIGINT)) AS g
    WHERE g.range + to_seconds($horizon_s::DOUBLE) <= c.last_tick
)
SELECT
    g.product_id,
    g.t AS event_timestamp,
    -- realized volatility over (t, t + horizon]; summed in time order so reruns agree to the last bit
    sqrt(sum(r.ret * r.ret ORDER BY r.event_time)) AS fwd_vol,
    count(*) AS fwd_returns                  -- returns it was computed from
FROM grid AS g
JOIN returns AS r
    ON r.product_id = g.product_id
    AND r.prev_time > g.t
    AND r.event_time <= g.t + to_seconds($horizon_s::DOUBLE)
GROUP BY ALL
HAVING count(*) >= 2
