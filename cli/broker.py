"""`tickstore broker`: start, stop and inspect the broker, and what `status` says of it."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from cli.context import console, report, settings_of
from ingest import broker as broker_mod
from tickstore.settings import Settings


@click.group()
def broker() -> None:
    """Start, stop or inspect the embedded Kafka-protocol broker (Tansu)."""


@broker.command("start")
@click.pass_context
def broker_start(ctx: click.Context) -> None:
    """Start the broker on 127.0.0.1:TICKSTORE_BROKER_PORT and create ticks.raw / ticks.dlq."""
    s = settings_of(ctx)
    st = broker_mod.start(s)  # a BrokerError is printed as its message by the root group
    where = "embedded broker" if st.embedded else "external Kafka (no embedded broker started)"
    console.print(
        f"[green]ok[/]: {where} at {escape(st.bootstrap)}" + (f", pid {st.pid}" if st.pid else ""),
        markup=True,
    )


@broker.command("stop")
@click.pass_context
def broker_stop(ctx: click.Context) -> None:
    """Stop the embedded broker (its in-memory topics are dropped)."""
    stopped = broker_mod.stop(settings_of(ctx))
    console.print("stopped" if stopped else "no embedded broker was running")


# Tansu answers a fetch only after searching the partition's log: ~0.3-0.5 s from 400,000 record
# batches on (ingest/fetch_watch.py), where the sink's 500 ms fetches start to bring almost nothing.
SLOW_PARTITION_BATCHES = 300_000


def broker_report(settings: Settings) -> tuple[bool, list[str]]:
    """Whether the broker answers as Kafka, and lines saying so (for `broker status` and `status`)."""
    from confluent_kafka import KafkaException

    from ingest import kafka, offsets

    st = broker_mod.status(settings)
    kind = "embedded" if st.embedded else "external"
    topics: dict[str, offsets.TopicStats] | None = None
    state = "[red]down[/]: start it with `tickstore broker start`" if st.embedded else "[red]down[/]"
    if st.reachable:
        try:
            # says why not: a refused login, TLS wanted, not Kafka; its metadata names the topics
            _, meta = kafka.cluster(settings, timeout=5.0)
            topics = offsets.topic_stats(settings, meta=meta)
            state = "[green]up[/]"
        except kafka.BrokerRefused as exc:  # it was reported "up", then a traceback
            state = f"[red]{escape(exc.why)}[/]"
        except KafkaException as exc:
            state = f"[red]accepts connections but gave no Kafka metadata ({escape(exc.args[0].str())})[/]"
    lines = [f"{kind} broker at {escape(st.bootstrap)}: {state}" + (f" (pid {st.pid})" if st.pid else "")]
    if topics is not None and st.embedded and st.pid is None:
        lines[0] += _whose(settings)
    for topic, stats in (topics or {}).items():
        # Tansu's watermarks count record batches, not messages: 6,000 replayed messages showed ~4,998
        counted = "record batches" if st.embedded else "messages"
        lines.append(
            f"  {escape(topic)}: {stats.partitions} partition{'s' * (stats.partitions != 1)}, "
            f"~{stats.messages:,} {counted} (from watermarks)"
        )
        if topic == settings.topic_raw:
            lines += _readers(settings, counted)
        if st.embedded and stats.busiest >= SLOW_PARTITION_BATCHES:
            # its watermarks count record batches: what a fetch has to read through
            lines.append(
                f"  [yellow]{escape(topic)} holds ~{stats.busiest:,} record batches in one partition[/]: the "
                "embedded broker reads them all for every fetch (~0.5 s at 600,000), and the sink and "
                "the stream slow down, then wait longer (they say so). Once `tickstore status` shows "
                "the lake and online features current, restart it (`tickstore broker stop`, `broker "
                "start`: it keeps nothing, the lake has every tick); the sink and the stream take their "
                "short wait up again when it answers"
            )
    return topics is not None, lines


def _whose(settings: Settings) -> str:
    """Whose the embedded broker answering is, when it is not this home's: its topics and consumer
    groups are shared, and a new home's sink went on from the other home's commits unsaid."""
    owner = broker_mod.home_of_broker(settings)
    if owner is None:  # this home's, its pid file removed; or a process not found
        return ""
    if owner.removed:
        return f", an embedded broker whose home ({escape(str(owner.home))}) was removed (pid {owner.pid})"
    return (
        f", [yellow]the embedded broker of another tickstore home[/], {escape(str(owner.home))} (pid "
        f"{owner.pid}): its topics and consumer groups are that home's too; TICKSTORE_BROKER_PORT "
        "gives this home a broker of its own"
    )


def _readers(settings: Settings, counted: str) -> list[str]:
    """A line each for the sink's and the stream's consumer groups: running or not, and how far behind
    ticks.raw their commits are.

    A stale lake, or stale online features, with messages unread and no member in the group: that
    process is not running (which a stale product alone can't tell from a quiet market).
    """
    from ingest import offsets

    lines = []
    for who, group, gets in (
        ("sink", settings.sink_group, "the lake has"),
        ("stream", settings.stream_group, "the online features have"),
    ):
        behind = offsets.group_lag(settings, group)
        running = offsets.group_running(settings, group)
        if behind is None:
            unread = "nothing read here yet"
        elif behind == 0:
            unread = "caught up"
        else:
            unread = f"~{behind:,} {counted} unread"
        if running is None:  # the broker won't say
            state = unread
        elif running:  # a running one is up to a batch behind
            state = f"[green]running[/], {unread}"
        elif behind:
            state = f"[yellow]not running[/], {unread}: {gets} only what it read (`tickstore {who}`)"
        elif behind == 0:
            state = "not running, caught up to its last commit"
        else:
            state = f"not running, {unread} (`tickstore {who}`)"
        lines.append(f"    {who} (group {escape(group)}): {state}")
    return lines


@broker.command("status")
@click.pass_context
def broker_status(ctx: click.Context) -> None:
    """Say whether the broker is up, list tickstore's topics with their message counts, and whether the
    sink and the stream run and how much of ticks.raw they have not read."""
    up, lines = broker_report(settings_of(ctx))
    for line in lines:
        report.print(line, markup=True)  # escaped where they interpolate
    sys.exit(0 if up else 1)
