"""The online reader (serving/features.py): ages from the tick clock, views past their TTL as NULL."""

from __future__ import annotations

from datetime import timedelta

from serving.features import OnlineFeatures
from tests.serving.conftest import write_online
from tickstore.settings import Settings


def test_a_view_exactly_its_ttl_old_is_current_and_a_microsecond_older_is_expired(
    serving_settings: Settings,
) -> None:
    """As the point-in-time join keeps a feature row exactly a TTL older than its entity row, and no
    older one: online and offline draw the line at the same microsecond."""
    write_online(serving_settings, "BTC-USD", value=0.25)
    reader = OnlineFeatures(serving_settings)
    [fresh] = reader.read(["BTC-USD"])
    at = fresh.event_time_us
    assert at is not None and fresh.expired_views == []
    ttls = {view.name: int(view.ttl / timedelta(microseconds=1)) for view, _ in reader.views}
    assert len(set(ttls.values())) == len(ttls) > 1  # the views expire one after another
    for name, ttl_us in ttls.items():
        [edge] = reader.read(["BTC-USD"], now_us=at + ttl_us)
        assert edge.age_s == ttl_us / 1e6 and name not in edge.expired_views
        [past] = reader.read(["BTC-USD"], now_us=at + ttl_us + 1)
        assert name in past.expired_views
        for view, names in reader.views:
            expired = view.name in past.expired_views
            assert expired == (ttls[view.name] <= ttl_us), (name, view.name)
            assert all((past.values[f] is None) == expired for f in names)
