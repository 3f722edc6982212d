-- labels_fwd_vol_60s: forward realized volatility of mid-price log returns over (t, t + $horizon_s].
-- grain: one row per (product_id, event_timestamp) on a grid every $every_s seconds in [$start, $end)
-- time column: event_timestamp (the label's time t; the features are joined as of t)
-- window: (t, t + horizon], built only from ticks strictly after t: a return counts only when both of
--   its ticks are after t, so nothing known at t leaks in and nothing of the label is known at t.
-- Rows whose horizon is not covered by data (no tick at or after t + horizon, or fewer than two
-- returns inside it) are dropped rather than labeled calm.
-- How: the returns counted for t are those with event_time <= t + horizon (a prefix of the product's
-- returns in time order) minus those whose previous tick is at or before t (a shorter prefix), so
-- each label is a difference of two running sums found by ASOF joins: no join of every grid point
-- with every return in its window (that range join took 88 s for a simulated day; this takes 1 s).
-- The squared returns are summed as DECIMAL(38,28) (each rounded once, to 1e-28), so the running
-- sums are exact: a difference of two is exactly the sum of the returns between them, whatever
-- $start is, and a stretch of unchanged mid-prices gives exactly 0. Summed as DOUBLE, DuckDB's
-- window adds a prefix from the nodes of a segment tree, not one by one, so a longer prefix could
-- come out an ulp smaller: such a stretch gave -8e-22 (sqrt failed) or 3e-11 instead of 0.
-- Parameters: $start, $end (TIMESTAMPTZ), $every_s, $horizon_s (seconds).
WITH returns AS (
    SELECT
        product_id,
        event_time,
        sequence,
        tick_id,
        lag(event_time) OVER p AS prev_time,
        ln(best_bid::DOUBLE + best_ask::DOUBLE) - ln(lag(best_bid::DOUBLE + best_ask::DOUBLE) OVER p) AS ret
    FROM ticks
    WHERE event_time >= $start AND event_time < $end + to_seconds($horizon_s::DOUBLE) * 2
    WINDOW p AS (PARTITION BY product_id ORDER BY event_time, sequence, tick_id)
),
running AS (
    SELECT
        product_id,
        event_time,
        prev_time,
        row_number() OVER w AS n,          -- returns up to and including this one, in time order
        -- their squared sum, exact; it overflows past 1e10, ~6 million returns of the largest move the
        -- sink lets in (prices within [1e-8, 1e10): a square of at most ~1,700) or 1.9e9 of 10x moves
        sum((ret * ret)::DECIMAL(38, 28)) OVER w AS sum_sq
    FROM returns
    WHERE prev_time IS NOT NULL            -- a product's first tick in range has no return
    WINDOW w AS (PARTITION BY product_id ORDER BY event_time, sequence, tick_id ROWS UNBOUNDED PRECEDING)
),
-- Running totals as of each time: the largest over returns sharing it (they only grow), so ties at
-- a time count all together, whatever their order.
upto_end AS (
    SELECT product_id, event_time AS at, max(n) AS n, max(sum_sq) AS sum_sq FROM running GROUP BY ALL
),
upto_start AS (
    SELECT product_id, prev_time AS at, max(n) AS n, max(sum_sq) AS sum_sq FROM running GROUP BY ALL
),
coverage AS (
    SELECT product_id, min(event_time) AS first_tick, max(event_time) AS last_tick FROM returns GROUP BY ALL
),
-- The grid's points $start + k * $every_s from each product's last one at or before its first tick
-- less the horizon (one before it has no return in its horizon; one there may, from ticks tied at
-- the first tick's time) to its last tick: a range of years asked over a day of ticks is a day's
-- grid, not years of points dropped one by one.
grid AS (
    SELECT c.product_id, g.range AS t
    FROM coverage AS c
    CROSS JOIN LATERAL range(
        $start::TIMESTAMPTZ + to_microseconds(($every_s * 1e6)::BIGINT * greatest(0, (
            epoch_us(c.first_tick - to_seconds($horizon_s::DOUBLE)) - epoch_us($start::TIMESTAMPTZ)
        ) // ($every_s * 1e6)::BIGINT)),
        least($end::TIMESTAMPTZ, c.last_tick),
        to_microseconds(($every_s * 1e6)::BIGINT)
    ) AS g
    WHERE g.range + to_seconds($horizon_s::DOUBLE) <= c.last_tick
),
spans AS (
    SELECT
        g.product_id,
        g.t,
        hi.n - coalesce(lo.n, 0) AS n,                  -- returns in (t, t + horizon]
        hi.sum_sq - coalesce(lo.sum_sq, 0) AS sum_sq
    FROM grid AS g
    -- returns ending by t + horizon ...
    ASOF JOIN upto_end AS hi
        ON hi.product_id = g.product_id AND hi.at <= g.t + to_seconds($horizon_s::DOUBLE)
    -- ... less those starting at or before t (all of them end by t + horizon when n > 0)
    ASOF LEFT JOIN upto_start AS lo
        ON lo.product_id = g.product_id AND lo.at <= g.t
)
SELECT
    product_id,
    t AS event_timestamp,
    sqrt(sum_sq::DOUBLE) AS fwd_vol,   -- realized volatility over (t, t + horizon]
    n AS fwd_returns           -- returns it was computed from
FROM spans
WHERE n >= 2
