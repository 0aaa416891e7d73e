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


def test_a_refused_form_shows_the_message_beside_its_field():
    settings = slurm_settings(PARTITIONS)
    settings.query_sinfo = lambda: SINFO
    page = form_page(
        settings.table(),
        "/hub/",
        values={"partition": "partition_1", "nprocs": "36", "tab": "advanced"},
        errors={"nprocs": "Unsupported number of CPU cores"},
    )
    # The value given comes back, marked invalid, with moss's message
    # beside it (JupyterHub's Bootstrap classes), on the tab it came from.
    assert (
        '<input name="nprocs" id="field-nprocs" value="36" placeholder="1" '
        'class="form-control is-invalid"> <span class="field-error '
        'invalid-feedback d-block" id="error-nprocs" role="alert">'
        "Unsupported number of CPU cores</span>"
    ) in page
    assert 'id="spawn-tab" value="advanced"' in page
    assert '<option value="partition_1" selected>' in page
    assert page.count("is-invalid") == 1


def test_the_hub_form_has_jupyterhub_classes_and_an_environment_select():
    settings = slurm_settings(PARTITIONS)
    settings.query_sinfo = lambda: SINFO
    page = form_page(
        settings.table(), "/hub/", descriptions={"default": "Virtual environment"}
    )
    assert 'class="partitions table table-sm table-striped"' in page
    assert 'class="tab nav-link" data-tab="simple"' in page
    assert 'class="button btn btn-outline-secondary btn-sm"' in page
    # moss's environment select: each environment by its description (the
    # partitions it belongs to named), and a custom one.
    assert (
        '<select name="environment_id" id="field-environment_id" class="form-select">'
    ) in page
    assert '<option value="default" data-partitions="partition_1 gpus">' in page
    assert "Virtual environment</option>" in page
    assert '<option value="">Custom: the path or modules below</option>' in page
    assert '<input name="environment_id"' not in page
