"""The spawn form JupyterHub shows, rendered without a hub: the console's
fields (both tabs) with moss's names, from the rows papa's settings give
for moss's test partitions (sinfo's answer given as text, as in
test_options.py; the real hub's page is in test_jupyterhub.py)."""

from __future__ import annotations

import pytest

from papa.hub.config import slurm_settings
from papa.hub.form import form_page
from tests.papa.hub.test_options import PARTITIONS, SINFO


def render(partitions: dict) -> str:
    settings = slurm_settings(partitions)
    settings.query_sinfo = lambda: SINFO
    return form_page(settings.table(), "/hub/")


@pytest.fixture
def page():
    # Both of moss's test partitions on the Simple tab.
    return render(
        {name: {**value, "simple": True} for name, value in PARTITIONS.items()}
    )


def test_the_form_has_both_tabs_with_moss_names(page):
    assert 'id="panel-simple"' in page and 'id="panel-advanced"' in page
    for field in ("environment_id", "environment_path", "environment_modules"):
        assert f'name="{field}"' in page
    assert 'name="environment"' not in page and 'name="path"' not in page
    assert 'value="true"' in page and 'value="/lab"' in page
    assert "<form" not in page and 'name="csrf"' not in page
    assert 'name="recipe"' not in page
    assert '<script src="/hub/form/spawn.js?v=' in page


def test_runtimes_above_the_partition_limit_are_left_out(page):
    # gpus allows 4 h: its buttons stop at 4 h; partition_1 (1 day) has 12 h.
    four = 'data-partitions="partition_1 gpus"><input type="radio" name="runtime"'
    five = 'data-partitions="partition_1"><input type="radio" name="runtime"'
    assert f'{four} value="4:00:00"' in page
    assert f'{five} value="5:00:00"' in page


def test_gpu_buttons_only_for_the_gpu_partition(page):
    assert 'data-partitions="gpus"><input type="radio" name="ngpus" value="4"' in page


def test_a_hub_without_simple_partitions_says_so():
    partitions = {
        name: {**value, "simple": False} for name, value in PARTITIONS.items()
    }
    with pytest.raises(RuntimeError, match="No 'simple' partition"):
        render(partitions)
