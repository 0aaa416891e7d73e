from setuptools import find_packages, setup

with open("README.rst") as f:
    long_description = f.read()

setup(
    name="zeopapa",
    version="0.1.0.dev0",
    description="A ZEO-compatible object database server and client, a process "
    "kernel for services and Slurm jobs, and a job layer on shared state.",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    license="ZPL-2.1",
    python_requires=">=3.11",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={
        "zeo": ["*.xml"],
        "papa": ["*.xml"],
        "dispatch.runtime": ["*.xml"],
        "dispatch.web": ["templates/*.html", "static/*"],
        "papa.hub": ["templates/*.html"],
        "papa.slurm": ["templates/*.html", "static/*"],
    },
    zip_safe=False,
    install_requires=[
        "ZODB>=6.0",
        "persistent",
        "transaction",
        "BTrees",
        "ZConfig>=4.0",
        "zdaemon>=5.0",
        "msgpack>=1.0",
        "zc.lockfile",
        "zodbpickle",
        "ZopeUndo",
        "zope.interface",
        # papa.slurm renders sbatch scripts from a template (imported lazily).
        "Jinja2>=3.0",
        # zocalo-style YAML site configuration (dispatch.runtime.yamlconfig;
        # imported only when a -C file is YAML).
        "PyYAML>=5.1",
    ],
    extras_require={
        "uvloop": ["uvloop"],
        # The console (`dispatch web`) runs on one host; the service
        # instances and step programs on every node do not need a web server.
        "web": ["aiohttp>=3.9", "prometheus-client>=0.17"],
        # papa.hub: the JupyterHub spawner, a drop-in for jupyterhub-moss's.
        "jupyterhub": ["jupyterhub>=5.3"],
        # tests/browser: Playwright drives Debian's chromium (make browser-up
        # installs it with apt; Playwright never downloads a browser here).
        "browser": ["playwright>=1.40"],
        # The `zeo` transport for python-workflows/zocalo services
        # (dispatch.workflows); only sites that run such services need it.
        "workflows": ["workflows>=3.3"],
        # runzeo serving RelStorage on PostgreSQL, and dispatch opened on
        # it directly (docs/scaling.rst).  psycopg2-binary is the driver
        # RelStorage prefers, as a wheel: no compiler or libpq headers.
        "relstorage": ["RelStorage>=4.0", "psycopg2-binary>=2.9"],
        # tests/fuzz/atheris_targets.py: coverage-guided fuzzing (libFuzzer);
        # wheels for CPython on Linux only, so it is left out elsewhere.
        "fuzz": ["atheris>=2.3; sys_platform == 'linux'"],
        "test": [
            "pytest",
            "pytest-timeout",
            "ruff",
            # make lint type-checks the public API ([tool.mypy] in pyproject.toml).
            "mypy",
            "zope.testing",
            "manuel",
            # tests/fuzz: property-based fuzzing of every network and file decoder.
            "hypothesis",
            # tests/papa/hub start a real JupyterHub and single-user servers.
            "jupyterhub>=5.3",
            "jupyter-server",
        ],
    },
    entry_points={
        "console_scripts": [
            "runzeo = zeo.runzeo:main",
            "zeopack = zeo.zeopack:main",
            "zeo-nagios = zeo.nagios:main",
            "papa = papa.__main__:main",
            "dispatch = dispatch.cli:main",
        ],
        # python-workflows finds transports here: `zocalo.service -t zeo`.
        "workflows.transport": [
            "zeo = dispatch.workflows.transport:ZeoTransport",
        ],
        "dispatch.services": [
            "Greeter = dispatch.runtime.examples:Greeter",
            "Counter = dispatch.runtime.examples:Counter",
            "CommandRunner = dispatch.runtime.commandrunner:CommandRunner",
            "Dispatcher = dispatch.runtime.dispatcher:Dispatcher",
        ],
    },
)
