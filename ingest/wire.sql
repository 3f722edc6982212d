-- wire: raw Coinbase WebSocket messages -> normalized ticks, control messages and rejects.
-- grain: one row per ticker (an Advanced Trade message may carry several), per control message,
--        and per rejected message or ticker
-- input: raw_batch(src_topic, src_partition, src_offset, kafka_time, payload VARCHAR, raw BLOB, pre_reason)
--        pre_reason is set (and payload NULL) when Python already rejected the bytes (size, UTF-8).
-- output columns: kind ('tick' | 'control' | 'reject'), reason (NULL unless kind = 'reject'), the tick
--        columns of the `ticks` table and ticker_index. Payloads are not carried along (copying every
--        message through each step halves throughput); rejects get theirs back by Kafka position.
-- Both wire formats are parsed by one json_transform call per message, so the JSON is read once.
WITH msg AS MATERIALIZED (
    SELECT
        src_topic, src_partition, src_offset, kafka_time, pre_reason,
        CASE WHEN pre_reason IS NULL AND json_valid(payload) THEN try(json_transform(payload, '{
            "type": "VARCHAR", "channel": "VARCHAR", "timestamp": "VARCHAR", "sequence_num": "VARCHAR",
            "time": "VARCHAR", "sequence": "VARCHAR", "product_id": "JSON", "trade_id": "VARCHAR",
            "side": "VARCHAR", "last_size": "VARCHAR", "price": "VARCHAR", "best_bid": "VARCHAR",
            "best_bid_size": "VARCHAR", "best_ask": "VARCHAR", "best_ask_size": "VARCHAR",
            "volume_24h": "VARCHAR",
            "events": [{"type": "VARCHAR", "tickers": [{
                "product_id": "JSON", "price": "VARCHAR", "best_bid": "VARCHAR",
                "best_bid_quantity": "VARCHAR", "best_ask": "VARCHAR", "best_ask_quantity": "VARCHAR",
                "volume_24_h": "VARCHAR"}]}]
        }')) END AS m
    FROM raw_batch
),
classified AS MATERIALIZED (
    SELECT
        *,
        CASE
            WHEN pre_reason IS NOT NULL OR m IS NULL THEN 'reject'
            WHEN m.channel = 'ticker' THEN 'advanced_trade'
            WHEN m.channel IN ('subscriptions', 'heartbeats') THEN 'control'
            WHEN m.channel IS NULL AND m.type = 'ticker' THEN 'exchange'
            WHEN m.channel IS NULL AND m.type IN ('subscriptions', 'heartbeat', 'status') THEN 'control'
            ELSE 'reject'
        END AS shape,
        CASE
            WHEN pre_reason IS NOT NULL THEN pre_reason
            WHEN m IS NULL THEN 'invalid JSON'
            -- well-formed messages of another channel (a recording of several): named, as no fix of
            -- the message makes them ticks
            WHEN m.channel IS NOT NULL
                THEN 'not a ticker message: Advanced Trade channel ' || left(m.channel, 64) || ' (tickstore reads channel ticker)'
            WHEN m.type IS NOT NULL
                THEN 'not a ticker message: Exchange message type ' || left(m.type, 64) || ' (tickstore reads type ticker)'
            ELSE 'unknown message shape (neither an Exchange ticker nor an Advanced Trade envelope)'
        END AS shape_reason,
        -- Advanced Trade: every ticker of every event; its envelope timestamp is the event time.
        CASE WHEN m.channel = 'ticker'
            THEN flatten(list_transform(coalesce(m.events, []), e -> coalesce(e.tickers, [])))
        END AS tickers
    FROM msg
),
raw_ticks AS (
    SELECT
        src_topic, src_partition, src_offset, kafka_time, 'exchange' AS feed, 0 AS ticker_index,
        m.product_id AS product_id_json, m.time AS time_raw, m.sequence AS sequence_raw, m.trade_id AS trade_id_raw,
        m.side, m.last_size AS last_size_raw, m.price AS price_raw, m.best_bid AS best_bid_raw,
        m.best_bid_size AS best_bid_size_raw, m.best_ask AS best_ask_raw,
        m.best_ask_size AS best_ask_size_raw, m.volume_24h AS volume_24h_raw
    FROM classified
    WHERE shape = 'exchange'
    UNION ALL
    SELECT
        src_topic, src_partition, src_offset, kafka_time, 'advanced_trade' AS feed,
        ticker_index, t.product_id AS product_id_json, time_raw, sequence_raw, NULL AS trade_id_raw, NULL AS side,
        NULL AS last_size_raw, t.price, t.best_bid, t.best_bid_quantity, t.best_ask,
        t.best_ask_quantity, t.volume_24_h
    FROM (
        SELECT
            src_topic, src_partition, src_offset, kafka_time, m.timestamp AS time_raw,
            m.sequence_num AS sequence_raw,
            unnest(tickers) AS t,
            unnest(range(len(tickers))) AS ticker_index
        FROM classified
        WHERE shape = 'advanced_trade'
    )
),
typed AS (
    SELECT
        *,
        -- product_id is read as JSON, its kind checked below: read as VARCHAR, any JSON value was
        -- text, and `false` or `123` made a product. Other fields' checks refuse values of other kinds.
        CASE WHEN json_type(product_id_json) = 'VARCHAR' THEN product_id_json ->> '$' END AS product_id,
        try_cast(time_raw AS TIMESTAMPTZ) AS event_time,
        try_cast(sequence_raw AS BIGINT) AS sequence,
        try_cast(trade_id_raw AS BIGINT) AS trade_id,
        exact_decimal(last_size_raw) AS last_size,
        exact_decimal(price_raw) AS price,
        exact_decimal(best_bid_raw) AS best_bid,
        exact_decimal(best_bid_size_raw) AS best_bid_size,
        exact_decimal(best_ask_raw) AS best_ask,
        exact_decimal(best_ask_size_raw) AS best_ask_size,
        exact_wide_decimal(volume_24h_raw) AS volume_24h
    FROM raw_ticks
),
checked AS (
    SELECT
        *,
        -- The first failed check names the reason; a NULL reason is a good tick.
        CASE
            WHEN product_id_json IS NULL OR json_type(product_id_json) = 'NULL' OR product_id = ''
                THEN 'missing field: product_id'
            WHEN product_id IS NULL THEN 'product_id is not a string: ' || left(product_id_json, 64)
            WHEN NOT regexp_full_match(product_id, '[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}')
                THEN 'product_id is not a product id (a letter or digit, then letters, digits, - _ . : or /; at most 64): ' || left(product_id, 64)
            WHEN time_raw IS NULL THEN 'missing field: time'
            WHEN event_time IS NULL THEN 'unparseable time: ' || left(time_raw, 64)
            -- a fixed range, not this machine's clock, so a message parses the same whenever it is read:
            -- wide of any market data, and within what Python, pandas and Arrow can all represent
            WHEN event_time < TIMESTAMPTZ '2000-01-01 00:00:00+00' OR event_time >= TIMESTAMPTZ '2100-01-01 00:00:00+00'
                THEN 'time outside the years 2000-2099: ' || left(time_raw, 64)
            -- try_cast rounds '1.5' to 2: a sequence or trade id is whole digits or rejected
            WHEN sequence_raw IS NOT NULL AND (sequence IS NULL OR NOT regexp_full_match(sequence_raw, '-?[0-9]+'))
                THEN 'unparseable sequence: ' || left(sequence_raw, 64)
            WHEN trade_id_raw IS NOT NULL AND (trade_id IS NULL OR NOT regexp_full_match(trade_id_raw, '-?[0-9]+'))
                THEN 'unparseable trade_id: ' || left(trade_id_raw, 64)
            WHEN side IS NOT NULL AND side NOT IN ('buy', 'sell') THEN 'side is neither buy nor sell: ' || left(side, 64)
            WHEN price_raw IS NULL THEN 'missing field: price'
            WHEN price IS NULL THEN 'price is not an exact decimal (at most 8 places, below 1e10): ' || left(price_raw, 64)
            WHEN best_bid_raw IS NOT NULL AND best_bid IS NULL THEN 'best_bid is not an exact decimal (at most 8 places, below 1e10): ' || left(best_bid_raw, 64)
            WHEN best_ask_raw IS NOT NULL AND best_ask IS NULL THEN 'best_ask is not an exact decimal (at most 8 places, below 1e10): ' || left(best_ask_raw, 64)
            WHEN best_bid_size_raw IS NOT NULL AND best_bid_size IS NULL THEN 'best_bid_size is not an exact decimal (at most 8 places, below 1e10): ' || left(best_bid_size_raw, 64)
            WHEN best_ask_size_raw IS NOT NULL AND best_ask_size IS NULL THEN 'best_ask_size is not an exact decimal (at most 8 places, below 1e10): ' || left(best_ask_size_raw, 64)
            WHEN last_size_raw IS NOT NULL AND last_size IS NULL THEN 'last_size is not an exact decimal (at most 8 places, below 1e10): ' || left(last_size_raw, 64)
            WHEN volume_24h_raw IS NOT NULL AND volume_24h IS NULL THEN 'volume_24h is not an exact decimal (at most 8 places): ' || left(volume_24h_raw, 64)
            WHEN price <= 0 THEN 'non-positive price: ' || price_raw
            WHEN best_bid <= 0 OR best_ask <= 0 THEN 'non-positive best bid/ask'
            WHEN best_bid_size < 0 OR best_ask_size < 0 OR last_size < 0 OR volume_24h < 0 THEN 'negative size'
            WHEN best_bid > best_ask THEN 'crossed book: best_bid ' || best_bid_raw || ' > best_ask ' || best_ask_raw
        END AS reason
    FROM typed
)
SELECT
    CASE WHEN reason IS NULL THEN 'tick' ELSE 'reject' END AS kind, reason,
    product_id, event_time, feed, sequence,
    -- Exchange sequences are per product and survive reconnects; Advanced Trade sequence_num restarts
    -- per connection, so its ticks are keyed by their content and receive time instead.
    -- 64 bits of an MD5 (stable across DuckDB versions, unlike hash()); the lake compares it together
    -- with product_id and event_time, so a collision would need both of those equal too.
    (CASE WHEN feed = 'exchange'
        THEN md5_number(concat_ws('|', feed, product_id, sequence::VARCHAR))
        ELSE md5_number(concat_ws('|', feed, product_id, time_raw, price_raw, best_bid_raw,
            best_bid_size_raw, best_ask_raw, best_ask_size_raw, volume_24h_raw))
    END >> 64)::UBIGINT AS tick_id,
    trade_id, side, last_size, price, best_bid, best_bid_size, best_ask, best_ask_size, volume_24h,
    src_topic, src_partition, src_offset, kafka_time,
    ticker_index
FROM checked
UNION ALL
SELECT
    CASE WHEN shape = 'control' THEN 'control' ELSE 'reject' END AS kind,
    CASE
        WHEN shape = 'reject' THEN shape_reason
        WHEN shape = 'advanced_trade' THEN 'ticker message without tickers'
    END AS reason,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    src_topic, src_partition, src_offset, kafka_time,
    NULL AS ticker_index
FROM classified
WHERE shape IN ('control', 'reject') OR (shape = 'advanced_trade' AND len(tickers) = 0)
