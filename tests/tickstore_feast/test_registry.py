"""The registry: its file's folders are created, a reader never sees it half-written, and tickstore
registers what feature_repo/ defines (dropping what it no longer does)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.repo_config import RegistryConfig

from tickstore.settings import Settings
from tickstore_feast.registry import DataDirRegistryStore

VIEWS = 50


def registry(views: int) -> RegistryProto:
    proto = RegistryProto()
    for i in range(views):
        view = proto.feature_views.add()
        view.spec.name, view.spec.project = f"view_{i:03d}_" + "x" * 100, "tickstore"
    return proto


def test_the_registry_creates_its_folders_and_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "registry.db"
    store = DataDirRegistryStore(RegistryConfig(path=str(path)), tmp_path)
    store.update_registry_proto(registry(2))
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    store.update_registry_proto(registry(3))
    assert path.stat().st_mode & 0o777 == 0o640
    assert len(store.get_registry_proto().feature_views) == 3
    assert [p.name for p in path.parent.iterdir()] == ["registry.db"]  # no temporary files left


def test_readers_never_see_a_half_written_registry(tmp_path: Path) -> None:
    # as the scorer reading it while `feast materialize` records its intervals: Feast's own file store
    # truncates and rewrites in place, and half the reads in this loop found it empty or cut off
    store = DataDirRegistryStore(RegistryConfig(path=str(tmp_path / "registry.db")), tmp_path)
    proto = registry(VIEWS)
    store.update_registry_proto(proto)
    reads, torn, stop = 0, 0, threading.Event()

    def read() -> None:
        nonlocal reads, torn
        while not stop.is_set():
            try:
                complete = len(store.get_registry_proto().feature_views) == VIEWS
            except Exception:  # a cut-off file does not parse
                complete = False
            reads, torn = reads + 1, torn + (not complete)

    reader = threading.Thread(target=read)
    reader.start()
    # at least 1.5 s, and on until both sides ran 100 times (a loaded machine: ~380 writes in 1.5 s here)
    writes, started = 0, time.monotonic()
    while time.monotonic() - started < 1.5 or (min(writes, reads) <= 100 and time.monotonic() - started < 30):
        store.update_registry_proto(proto)
        writes += 1
    stop.set()
    reader.join()
    assert writes > 100 and reads > 100  # the two really overlapped
    assert torn == 0


def test_tickstore_registers_what_features_py_defines_and_drops_what_it_no_longer_does(
    make_settings: Callable[..., Settings],
) -> None:
    from datetime import timedelta
    from types import ModuleType

    from feast import FeatureService, FeatureView, Field
    from feast.types import Int64

    from tickstore_feast import DuckDBSource
    from tickstore_feast.repo import apply_repo, definitions, feature_store, repo_objects

    s = make_settings()
    d = definitions()
    edited = ModuleType("features")  # features.py with a view and a service added, as a user would
    edited.product, edited.ticks_60s = d.product, d.ticks_60s
    edited.extra = FeatureView(
        name="extra",
        entities=[d.product],
        ttl=timedelta(0),
        schema=[Field(name="n", dtype=Int64)],
        source=DuckDBSource(
            name="extra", query="SELECT product_id, event_time, 1 AS n FROM ticks", lookback=timedelta(0)
        ),
    )
    edited.extra_service = FeatureService(name="extra_service", features=[edited.extra, d.ticks_60s])
    store = feature_store(s)
    apply_repo(store, repo_objects([edited]))
    assert {v.name for v in store.list_feature_views()} == {"ticks_60s", "extra"}
    assert {f.name for f in store.list_feature_services()} == {"extra_service"}
    # the next tickstore command applies feature_repo/ as it is: extra is gone, the rest is back
    store = feature_store(s)
    assert {v.name for v in store.list_feature_views()} == {
        "ticks_10s",
        "ticks_60s",
        "ticks_300s",
        "tick_clock",
    }
    assert {f.name for f in store.list_feature_services()} == {"volatility_model"}


def test_definitions_split_over_files_are_all_read_once_and_a_clash_is_named(tmp_path: Path) -> None:
    from tests.feature_repo.test_feast_cli import copy_repo
    from tickstore.errors import TickstoreError
    from tickstore_feast.repo import repo_modules, repo_objects

    repo = copy_repo(tmp_path)
    # a second file importing the first one's entity, as Feast repos often are (`feast apply` reads both)
    (repo / "flow.py").write_text(
        "from datetime import timedelta\n"
        "from feast import FeatureView, Field\n"
        "from feast.types import Float64\n"
        "from features import SQL, product\n"
        "from tickstore_feast import DuckDBSource\n"
        "flow = FeatureView(name='flow', entities=[product], ttl=timedelta(seconds=60),\n"
        "    schema=[Field(name='ret_mean_60s', dtype=Float64)],\n"
        "    source=DuckDBSource(sql_file=SQL / 'ticks_60s.sql', lookback=timedelta(seconds=60)))\n"
    )
    names = sorted((type(o).__name__, o.name) for o in repo_objects(repo_modules(repo)))
    assert ("FeatureView", "flow") in names and names.count(("Entity", "product")) == 1
    assert len(names) == 7  # product, 5 views, the service
    (repo / "flow.py").write_text((repo / "flow.py").read_text().replace("'flow'", "'flow2'"))
    again = {o.name for o in repo_objects(repo_modules(repo))}  # an edit is read afresh
    assert "flow2" in again and "flow" not in again
    (repo / "clash.py").write_text(
        "from feast import Entity, ValueType\n"
        "product = Entity(name='product', join_keys=['symbol'], value_type=ValueType.STRING)\n"
    )
    with pytest.raises(TickstoreError, match="two different entity definitions are named 'product'"):
        repo_objects(repo_modules(repo))


def test_a_mistake_in_a_feature_repo_file_is_named_by_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from feast.repo_operations import parse_repo

    from tests.feature_repo.test_feast_cli import copy_repo
    from tickstore.errors import TickstoreError
    from tickstore_feast.repo import repo_error, repo_modules

    repo = copy_repo(tmp_path)
    features = repo / "features.py"
    lines = features.read_text().count("\n")
    # what the README's "adding a feature" tempts: the service has no `features` list to append to
    features.write_text(features.read_text() + "volatility_model.features.append(ticks_60s)\n")
    with pytest.raises(TickstoreError) as raised:
        repo_modules(repo)
    message = str(raised.value)
    assert message.startswith(f"{repo.name}/features.py, line {lines + 1}: AttributeError: ")
    assert f"`python {repo.name}/features.py` shows the whole traceback" in message
    # the same from Feast's own reading of the repo (how `tickstore feast apply` fails on it), which
    # imports the files as modules of the folder it runs in
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    monkeypatch.delitem(sys.modules, "features", raising=False)
    with pytest.raises(AttributeError) as from_feast:
        parse_repo(repo)
    assert repo_error(from_feast.value, repo) == message
    features.write_text(features.read_text().replace(".append(ticks_60s)", ".append(ticks_60s"))
    with pytest.raises(TickstoreError, match=rf"features.py, line {lines + 1}: SyntaxError: "):
        repo_modules(repo)
    # an error from elsewhere is not blamed on the repo
    assert repo_error(ValueError("not from the repo"), repo) is None


def test_a_view_whose_sql_does_not_bind_is_named_when_applied_not_when_first_read(
    make_settings: Callable[..., Settings],
) -> None:
    from datetime import timedelta

    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore.errors import TickstoreError
    from tickstore_feast import DuckDBSource
    from tickstore_feast.repo import apply_repo, definitions, feature_store, repo_modules, repo_objects

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    store = feature_store(s, apply=False)
    view = definitions().ticks_60s
    typo = view.batch_source.query.replace("stddev_samp(", "stddev_smp(")
    view.batch_source = DuckDBSource(name="ticks_60s", query=typo, lookback=timedelta(seconds=60))
    objects = [o for o in repo_objects(repo_modules()) if o.name != "ticks_60s"] + [view]
    # Feast's FeatureStore.apply binds nothing: the view was registered, and a dataset build or the
    # stream failed later with a traceback from the offline store's query
    with pytest.raises(
        TickstoreError, match=r"the SQL of 'ticks_60s' .* does not run on the lake: .*stddev_smp"
    ):
        apply_repo(store, objects)
    assert "ticks_60s" not in {v.name for v in store.list_feature_views()}
    # the lake's ticks dropped by hand is no fault of a view's SQL: said so (the stream said "fix it")
    from tickstore import lake

    con = lake.connect(s, create=False)
    con.execute("DROP TABLE ticks")
    con.close()
    with pytest.raises(
        TickstoreError, match=r"does not run on the lake without its ticks table: put it back"
    ):
        apply_repo(store, [o for o in repo_objects(repo_modules()) if o.name != "ticks_60s"])


def test_a_view_naming_a_column_its_source_does_not_give_is_refused_when_applied(
    make_settings: Callable[..., Settings],
) -> None:
    from datetime import timedelta

    from feast import FeatureView, Field
    from feast.types import Float64

    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore.errors import TickstoreError
    from tickstore_feast import DuckDBSource
    from tickstore_feast.repo import apply_repo, definitions, feature_store, repo_modules, repo_objects

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    store = feature_store(s, apply=False)
    d = definitions()

    def view(name: str, features: list[str], **mapping: str) -> FeatureView:
        source = DuckDBSource(
            name=name, query=d.ticks_60s.batch_source.query, field_mapping=mapping, ties_equal=True
        )
        schema = [Field(name=f, dtype=Float64) for f in features]
        return FeatureView(
            name=name, entities=[d.product], ttl=timedelta(seconds=60), schema=schema, source=source
        )

    objects = repo_objects(repo_modules())
    # Feast registered it, and the first training set failed with DuckDB's binder traceback
    with pytest.raises(
        TickstoreError,
        match=r"feature view 'typo' names 'ret_sd_60s', 'vol_60s', which its source 'typo' does not give: "
        r"add them to the SELECT or drop them from the view's schema \(feature_repo/\)\. "
        r"The source gives: product_id, event_time, ret_mean_60s",
    ):
        apply_repo(store, [*objects, view("typo", ["ret_std_60s", "ret_sd_60s", "vol_60s"])])
    assert "typo" not in {v.name for v in store.list_feature_views()}
    # a time column the source does not give
    late = view("late", ["ret_std_60s"])
    late.batch_source.timestamp_field = "ts"
    with pytest.raises(TickstoreError, match=r"names 'ts', .*: give the source the time column it has"):
        apply_repo(store, [*objects, late])
    # a column renamed by the source's field mapping is the view's feature by its new name
    apply_repo(store, [*objects, view("renamed", ["vol_60s"], ret_std_60s="vol_60s")])
    assert "renamed" in {v.name for v in store.list_feature_views()}


def test_tickstore_feast_apply_refuses_a_view_naming_a_column_its_sql_lacks(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cli.main import main
    from tests.feature_repo.test_feast_cli import WIDE_VIEW, copy_repo
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    repo = copy_repo(tmp_path)
    (repo / "more.py").write_text(WIDE_VIEW)
    # `tickstore feast apply` on that repo: Feast's CLI validates the sources, our source checks the
    # views over it, and nothing is registered
    monkeypatch.setattr("tickstore_feast.repo.FEATURE_REPO", repo)
    for command in ("apply", "plan"):
        result = CliRunner().invoke(main, ["--home", str(s.home), "feast", command])
        assert result.exit_code == 1, result.output
        assert "Error: feature view 'wide' names 'ret_std_20s'" in result.output
    result = CliRunner().invoke(main, ["--home", str(s.home), "feast", "feature-views", "list"])
    assert result.exit_code == 0 and "ticks_60s" not in result.output, result.output


def test_a_damaged_registry_is_named_with_how_to_make_it_again(
    make_settings: Callable[..., Settings],
) -> None:
    from tickstore_feast.config import registry_path
    from tickstore_feast.registry import RegistryDamaged
    from tickstore_feast.repo import feature_store

    s = make_settings()
    feature_store(s)
    path = Path(registry_path(s)).resolve()
    path.write_bytes(path.read_bytes()[:300])  # cut short
    # protobuf's DecodeError, as a traceback from the stream, the scorer, status and dataset build
    with pytest.raises(RegistryDamaged, match=rf"the feature registry {path} is damaged .*: remove it"):
        feature_store(s)
    path.unlink()
    store = feature_store(s)  # registered again, as the message says
    assert {v.name for v in store.list_feature_views()} >= {"ticks_60s", "tick_clock"}


def _online_paths(registry_file: Path) -> set[str]:
    proto = RegistryProto()
    proto.ParseFromString(registry_file.read_bytes())
    return {
        o.sqlite_table.path
        for o in proto.infra.infra_objects
        if o.WhichOneof("infra_object") == "sqlite_table"
    }


def test_a_home_moved_or_copied_elsewhere_applies_and_leaves_the_original_alone(tmp_path: Path) -> None:
    # Feast opens each online table's recorded path as it reads the registry: a moved home failed
    # with "No such file or directory: .../<old home>/feast" (until stop 57)
    import shutil
    import sqlite3

    from tickstore_feast.repo import feature_store

    made = tmp_path / "made"
    feature_store(Settings(home=made))
    copy, moved = tmp_path / "copy", tmp_path / "elsewhere" / "home"
    shutil.copytree(made, copy)

    def applied(home: Path) -> None:
        store = feature_store(Settings(home=home))  # applies feature_repo/, as every command does
        assert "ticks_60s" in {v.name for v in store.list_feature_views()}
        recorded = _online_paths(home / "feast" / "registry.db")
        assert recorded and {Path(p).resolve() for p in recorded} == {
            (home / "feast" / "online_store.db").resolve()
        }

    def online_tables(home: Path) -> set[str]:
        db = sqlite3.connect(home / "feast" / "online_store.db")
        try:
            return {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()

    applied(copy)
    assert "tickstore_ticks_60s" in online_tables(made)  # the original's left as it was
    moved.parent.mkdir()
    made.rename(moved)
    applied(moved)
    assert "tickstore_ticks_60s" in online_tables(moved)


def test_feast_apply_on_a_copied_home_keeps_its_online_tables(make_settings: Callable[..., Settings]) -> None:
    # the copy's recorded tables were pointed at its own store spelled otherwise than Feast's CLI plans
    # it: `tickstore feast plan` listed each as "Updated sqlite table", and `apply` dropped every one
    import shutil
    import sqlite3

    from tests.cli.helpers import tickstore
    from tests.serving.conftest import write_online

    made = make_settings()
    write_online(made, "BTC-USD")
    copy = made.model_copy(update={"home": made.home.parent / "copy"})
    shutil.copytree(made.home, copy.home)
    plan = tickstore(copy, "feast", "plan").stdout
    assert "Updated sqlite table" not in plan and "path:" not in plan, plan
    tickstore(copy, "feast", "apply")
    db = sqlite3.connect(copy.home / "feast" / "online_store.db")
    try:
        (rows,) = db.execute("SELECT count(DISTINCT entity_key) FROM tickstore_ticks_60s").fetchone()
    finally:
        db.close()
    assert rows == 1
