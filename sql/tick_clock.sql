-- tick_clock: when a product's features were last current, to the microsecond.
-- grain: one row per tick (product_id, event_time); ticks sharing an event_time get equal values
-- time column: event_time (exchange time, UTC, microseconds)
-- window: none; each row is the tick itself.
-- lookback: 0 s (a row reads its own tick only)
-- Feast's online stores keep event timestamps to the second; the scorer reads this view beside the
-- window views to tell a feature's age (and refuse stale data) at microsecond resolution.
SELECT
    product_id,
    event_time,
    epoch_us(event_time) AS event_time_us  -- the tick's event time, microseconds since the Unix epoch
FROM ticks
