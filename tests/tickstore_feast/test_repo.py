"""`feature_store(settings)` (tickstore_feast/repo.py) where the data directory is the default one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickstore import lake, paths
from tickstore.settings import Settings
from tickstore_feast.repo import feature_store


def test_a_default_home_elsewhere_than_the_source_tree_s_lake_is_refused_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a notebook in notebooks/ opening feature_store(Settings()) made .tickstore/feast/ there (a
    # registry and an empty online store), and only its first query said the lake was elsewhere
    tree = tmp_path / "tree"
    lake.connect(Settings(home=tree / ".tickstore")).close()
    monkeypatch.setattr(paths, "SOURCE_TREE", tree)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.chdir(notebooks)
    monkeypatch.delenv("TICKSTORE_HOME", raising=False)
    with pytest.raises(lake.LakeError) as refused:
        feature_store(Settings())
    said = str(refused.value)
    assert f"no data directory in this folder ({notebooks / '.tickstore'} does not exist)" in said, said
    assert f"the source tree's, with its lake, is {tree / '.tickstore'}" in said
    assert f"from Python, Settings(home='{tree / '.tickstore'}')" in said
    assert list(notebooks.iterdir()) == []  # nothing made

    # the tree's own, as that says, opens
    assert feature_store(Settings(home=tree / ".tickstore")).list_feature_views()
    # a home given is the user's choice, as is a default one made before (the stream may start first)
    assert feature_store(Settings(home=notebooks / "given")).list_feature_views()
    (notebooks / ".tickstore").mkdir()
    assert feature_store(Settings()).list_feature_views()
    # and with no lake in the source tree there is nowhere else to point at: a new home is made
    monkeypatch.setattr(paths, "SOURCE_TREE", tmp_path / "bare")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert feature_store(Settings()).list_feature_views()
    assert (other / ".tickstore" / "feast").is_dir()
