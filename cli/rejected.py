"""`tickstore ingest rejected`: send rejected messages through the pipeline again."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn

from cli.context import console, progress_bar, settings_of
from tickstore.text import count_of


@click.command("rejected")
@click.option(
    "--reason",
    metavar="PATTERN",
    help="Only messages whose reason is LIKE this (SQL: % any text, _ one character), e.g. 'message too large%'.",
)
@click.option("--dry-run", is_flag=True, help="Count them by reason; send nothing.")
@click.pass_context
def ingest_rejected(ctx: click.Context, reason: str | None, dry_run: bool) -> None:
    """Publish the messages of ticks_rejected to ticks.raw again, byte for byte and each once, for the
    sink to parse anew once their reason is gone (a limit raised, ingest/wire.sql taught a new shape).

    \b
      tickstore ingest rejected --dry-run            # what there is, by reason
      tickstore ingest rejected --reason 'message too large%'

    Ticks are keyed by their content: a message whose ticks are in the lake already adds nothing, and
    one that still fails is rejected again, as a new row of ticks_rejected.
    """
    from ingest import rejected

    s = settings_of(ctx)
    with progress_bar(  # no broker, no lake: their TickstoreErrors say what to do (cli/main.py)
        BarColumn(),
        MofNCompleteColumn(),
    ) as bar:
        task = bar.add_task("counting" if dry_run else "publishing", total=None)
        done = rejected.republish(s, reason, dry_run=dry_run, progress=lambda n: bar.advance(task, n))
    if not done.matched:
        console.print("no rejected messages" + (f" with a reason LIKE {reason!r}" if reason else ""))
        return
    for why, n in done.by_reason.most_common():
        console.print(f"  {n:,}  {why}")  # control characters written out by the console
    if done.empty:
        console.print(f"{done.empty:,} had no value: nothing to send")
    if done.too_large:
        console.print(
            f"{done.too_large:,} exceed TICKSTORE_MAX_MESSAGE_BYTES: not sent (the broker would refuse them)"
        )
    if dry_run:
        console.print(
            f"{count_of(done.matched, 'rejected message')}; without --dry-run "
            f"{'it is' if done.matched == 1 else 'they are'} published to {s.topic_raw}"
        )
        return
    console.print(
        f"published {done.sent:,} of {done.matched:,} to {s.topic_raw}: `tickstore sink` parses them again "
        "(those whose ticks are in the lake already add nothing; those that still fail are rejected again)"
    )
