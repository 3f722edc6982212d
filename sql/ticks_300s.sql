-- ticks_300s: market microstructure features over the last 300 seconds of ticks, per product.
-- grain: one row per tick (product_id, event_time); ticks sharing an event_time get equal values
-- time column: event_time (exchange time, UTC, microseconds)
-- lookback: 300 s (how far back one row reads ticks; ranges of rows are computed from ticks
--   twice that earlier on, as a window's first return needs the tick before it)
-- window: every tick of the product with event_time in [t - 300 s, t], both ends included: an exact
--   event-time window. It is evaluated as a ROWS frame whose per-row offsets come from an ASOF join on
--   event time, because DuckDB 1.5 evaluates a RANGE frame this wide several times slower; the rows
--   framed are exactly those of RANGE BETWEEN INTERVAL 300 SECOND PRECEDING AND CURRENT ROW.
-- A return is the change of log mid-price from the product's previous tick (ln(bid + ask) differences:
-- the /2 cancels), and only when that tick is at most 300 s earlier: after a gap longer than the window
-- the first tick starts afresh instead of carrying a stale move into the window.
WITH t AS (
    SELECT
        product_id,
        event_time,
        epoch_us(event_time) AS us,
        row_number() OVER p AS rn,
        -- rows up to and including this tick's timestamp peers: the row number its frame ends at
        count(*) OVER (PARTITION BY product_id ORDER BY event_time) AS last_rn,
        price,  -- kept exact: max and min over DECIMAL(18,8) cost less than over DOUBLE
        best_ask::DOUBLE - best_bid::DOUBLE AS spread,
        (best_ask::DOUBLE - best_bid::DOUBLE) / ((best_ask::DOUBLE + best_bid::DOUBLE) / 2) * 1e4 AS spread_bps,
        (best_bid_size::DOUBLE - best_ask_size::DOUBLE)
            / nullif(best_bid_size::DOUBLE + best_ask_size::DOUBLE, 0) AS imbalance,
        CASE WHEN epoch_us(event_time) - lag(epoch_us(event_time)) OVER p <= 300000000
            THEN ln(best_bid::DOUBLE + best_ask::DOUBLE) - ln(lag(best_bid::DOUBLE + best_ask::DOUBLE) OVER p)
        END AS ret
    FROM ticks
    WINDOW p AS (PARTITION BY product_id ORDER BY event_time, sequence, tick_id)
),
-- frames end after a tick's timestamp peers and start after the last tick older than the window
-- (any tick of that timestamp: they share last_rn)
framed AS (
    SELECT t.*, t.rn - coalesce(older.last_rn, 0) - 1 AS back, t.last_rn - t.rn AS ahead
    FROM t
    ASOF LEFT JOIN (SELECT product_id, us, last_rn FROM t) AS older
        ON older.product_id = t.product_id AND older.us < t.us - 300000000
)
SELECT
    product_id,
    event_time,
    avg(ret) OVER w AS ret_mean_300s,                    -- mean of mid-price log returns
    stddev_samp(ret) OVER w AS ret_std_300s,             -- sample std of mid-price log returns (NULL with < 2 returns)
    sum(ret * ret) OVER w AS realized_var_300s,          -- realized variance: sum of squared returns
    avg(spread) OVER w AS spread_mean_300s,              -- mean best_ask - best_bid, in price units
    avg(spread_bps) OVER w AS spread_bps_mean_300s,      -- mean spread in basis points of the mid
    (back + ahead + 1) / 300.0 AS trade_intensity_300s,  -- ticker updates (one per trade) per second
    avg(imbalance) OVER w AS imbalance_mean_300s,        -- mean (bid_size - ask_size) / (bid_size + ask_size); NULL without sizes
    back + ahead + 1 AS tick_count_300s,                 -- ticks in the window (the frame's rows)
    (max(price) OVER w - min(price) OVER w)::DOUBLE AS price_range_300s  -- highest minus lowest trade price
FROM framed
WINDOW w AS (PARTITION BY product_id ORDER BY rn ROWS BETWEEN back PRECEDING AND ahead FOLLOWING)
