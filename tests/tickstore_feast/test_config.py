"""tickstore_feast/config.py: feature_store.yaml read, checked, and its paths moved under the home."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feature_repo.test_feast_cli import copy_repo
from tickstore.settings import Settings
from tickstore_feast.config import ConfigError, repo_config

OFFLINE = "offline_store:\n  type: tickstore_feast.offline_store.DuckDBOfflineStore\n"


def edited_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> Path:
    """A copy of feature_repo/ whose feature_store.yaml has ``old`` replaced by ``new``, read from
    here on as tickstore's; returns that file."""
    yaml_file = copy_repo(tmp_path) / "feature_store.yaml"
    text = yaml_file.read_text()
    assert old in text  # the edit lands: the test tests the file as shipped
    yaml_file.write_text(text.replace(old, new))
    monkeypatch.setattr("tickstore_feast.config.FEATURE_REPO", yaml_file.parent)
    return yaml_file


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        (
            "type: sqlite",
            "type: sqlit",
            "Online Store Class 'sqlit' should end with the string `OnlineStore`",
        ),
        ("provider: local", "provider: locl", "Provider 'locl' is not implemented"),
        (
            "DuckDBOfflineStore",
            "DuckDBOfflinStore",
            "Offline Store Class 'tickstore_feast.offline_store.DuckDBOfflinStore' should end with",
        ),
        (
            "offline_store.DuckDB",
            "offline_stor.DuckDB",
            "Could not import module 'tickstore_feast.offline_stor'",
        ),
        (
            "entity_key_serialization_version: 3",
            "entity_key_serialization_version: x",
            "entity_key_serialization_version: Input should be a valid integer",
        ),
        (
            "project: tickstore",
            "project: tickstore\n  bad: [",
            "not YAML: mapping values are not allowed here",
        ),
        ("  path: ../.tickstore/feast/online_store.db\n", "", "no `path:` under `online_store:`"),
        (OFFLINE, "", "no `type:` under `offline_store:`"),
    ],
)
def test_a_mistake_in_feature_store_yaml_is_named_as_the_file_s(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: str,
    new: str,
    said: str,
) -> None:
    # each was a traceback from wherever Feast first resolved what the file names
    yaml_file = edited_repo(tmp_path, monkeypatch, old, new)
    with pytest.raises(ConfigError) as refused:
        repo_config(make_settings())
    assert str(refused.value).startswith(f"{yaml_file}: ")
    assert said in str(refused.value)
    assert str(refused.value).endswith(
        "(`git diff feature_repo/feature_store.yaml` shows what was changed in it)"
    )


def test_tickstore_feast_names_the_mistake_before_feast_s_cli_runs(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.main import main

    s = make_settings()
    yaml_file = edited_repo(tmp_path, monkeypatch, "provider: local", "provider: locl")
    result = CliRunner().invoke(main, ["--home", str(s.home), "feast", "feature-views", "list"])
    assert result.exit_code == 1, result.output
    assert f"Error: {yaml_file}: Provider 'locl' is not implemented" in result.output
    assert "Traceback" not in result.output


def test_feast_s_short_form_of_the_registry_is_read(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = (
        "registry:\n  path: ../.tickstore/feast/registry.db\n"
        "  registry_store_type: tickstore_feast.registry.DataDirRegistryStore  # creates ../.tickstore if missing\n"
    )
    edited_repo(tmp_path, monkeypatch, old, "registry: ../.tickstore/feast/registry.db\n")
    s = make_settings()
    config = repo_config(s)
    assert config.registry.path == str(s.home.resolve() / "feast" / "registry.db")
