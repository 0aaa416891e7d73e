"""The batch script of a job, rendered from one Jinja2 template.

The script writes its command's exit status to a file in the job's folder
itself, so the exit code is known even after Slurm has purged the job and
without accounting (``sacct`` needs slurmdbd).  Checked sbatch options are
``#SBATCH`` lines, so the saved script documents the job and can be
resubmitted by hand; values are validated not to contain spaces or newlines
before they get here, and everything else is quoted with :func:`shlex.quote`.
"""

from __future__ import annotations

import shlex

import jinja2

STATUS_FILE = "exit-status"

TEMPLATE = """\
#!/bin/bash
# Batch script of papa process {{ name | q }}; written by papa, kept in
# {{ folder }} with the job's output and exit status.
{% for directive in directives -%}
#SBATCH {{ directive }}
{% endfor -%}
{% if extra_options -%}
# submitted with the extra options: {{ extra_options | join(" ") }}
{% endif -%}
{% for line in prologue %}
{{ line }}
{%- endfor %}
{% for key, value in environment %}
export {{ key }}={{ value | q }}
{%- endfor %}
{{ command }}
status=$?
status_file={{ status_file | q }}${SLURM_ARRAY_TASK_ID:+-$SLURM_ARRAY_TASK_ID}
printf '%s\\n' "$status" > "$status_file.tmp" && mv "$status_file.tmp" "$status_file"
exit "$status"
"""

_ENVIRONMENT = jinja2.Environment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
)
_ENVIRONMENT.filters["q"] = lambda value: shlex.quote(str(value))
_TEMPLATE = _ENVIRONMENT.from_string(TEMPLATE)


def render(
    name: str,
    folder: str,
    args: list[str],
    shell: bool,
    environment: dict[str, str],
    directives: list[str],
    extra_options: list[str],
    prologue: list[str],
) -> str:
    """The batch script text.

    ``args`` is the command as papa gives it: quoted word by word, or, with
    ``shell``, joined into one line of shell code (as ``/bin/sh -c`` would
    run it locally).
    """
    command = " ".join(args) if shell else shlex.join(args)
    return _TEMPLATE.render(
        name=name,
        folder=folder,
        command=command,
        environment=sorted(environment.items()),
        directives=directives,
        extra_options=[shlex.quote(option) for option in extra_options],
        prologue=prologue,
        status_file=f"{folder}/{STATUS_FILE}",
    )
