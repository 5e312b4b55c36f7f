"""Where dask runs: the local scheduler, a local cluster, a remote scheduler, or a batch system's jobs.

A batch system's cluster (Slurm, PBS, SGE, LSF) is dask-jobqueue's: each
batch job runs dask workers that connect back to a scheduler in this
process. :func:`jobqueue` builds one from dask-jobqueue's own configuration
(``~/.config/dask/jobqueue.yaml``), as any jobqueue user's code does, and
gives its workers geoanom's environment; :func:`connect` is what the
command line's ``--workers``, ``--scheduler``, ``--scheduler-file`` and
``--cluster`` options open.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import dask

from .errors import GeoanomError

# Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which also freezes
# glibc's mmap threshold at 128 KiB: every array above it is then mapped and
# unmapped afresh, and the many mid-sized temporaries of batched EM run twice
# as slowly. Arrays below 32 MiB go back to the heap instead. Batch jobs get the
# same variable through their job script (see worker_exports).
WORKER_ENVIRONMENT = {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 * 2**20}
# The dask-jobqueue cluster class of each batch system geoanom offers.
JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}


def make_client(workers: int | None = None, scheduler: str | None = None, *,
                scheduler_file: str | Path | None = None) -> Any:
    """A ``distributed.Client`` for ``--workers N``, ``--scheduler ADDRESS`` or ``--scheduler-file PATH``, else None.

    With none of them, dask's default threaded scheduler runs in this process.

    Parameters
    ----------
    workers : int, optional
        Start a local cluster of this many single-threaded worker processes.
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://host:8786`` (a dask-jobqueue
        cluster's ``scheduler_address`` works too).
    scheduler_file : str or Path, optional
        The JSON file a scheduler wrote with ``dask scheduler --scheduler-file``.

    Examples
    --------
    >>> make_client() is None
    True
    >>> client = make_client(workers=2)  # doctest: +SKIP
    """
    check_options(workers, scheduler, scheduler_file=scheduler_file)
    if workers is None and scheduler is None and scheduler_file is None:
        return None
    from distributed import Client, LocalCluster

    if scheduler is not None or scheduler_file is not None:
        return _remote_client(scheduler, scheduler_file)
    with dask.config.set(WORKER_ENVIRONMENT):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


def _remote_client(scheduler: str | None, scheduler_file: str | Path | None) -> Any:
    """A client of a running scheduler, by address or by the file it wrote."""
    from distributed import Client

    where = scheduler if scheduler is not None else f"the address in '{scheduler_file}'"
    try:
        if scheduler is not None:
            return Client(scheduler, timeout="10s")
        return Client(scheduler_file=str(Path(scheduler_file).expanduser()), timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise GeoanomError(f"cannot reach the dask scheduler at {where} ({error}).") from None


def worker_exports() -> list[str]:
    """The shell lines that give a batch job's workers the environment of ``--workers``' local workers.

    Examples
    --------
    >>> worker_exports()
    ['export MALLOC_MMAP_THRESHOLD_=33554432']
    """
    prefix = "distributed.nanny.pre-spawn-environ."
    return [f"export {key[len(prefix):]}={value}" for key, value in WORKER_ENVIRONMENT.items()]


def jobqueue(kind: str, jobs: int = 1, *, adapt: tuple[int, int] | None = None, **kwargs: Any) -> Any:
    """A dask-jobqueue cluster of batch jobs (Slurm, PBS, SGE or LSF), scaled to `jobs` or adaptive.

    Settings come from dask-jobqueue's own configuration (``jobqueue.yaml``
    under ``jobqueue.<kind>``, or ``DASK_JOBQUEUE__...`` variables), as for
    any jobqueue user; `kwargs` override them. geoanom adds two things: its
    workers' environment (:func:`worker_exports`) is appended to the job
    script's ``job_script_prologue``, and when neither the configuration nor
    `kwargs` give ``processes``, each job runs one single-threaded worker
    per core, like ``geoanom detect --workers N``.

    Parameters
    ----------
    kind : {"slurm", "pbs", "sge", "lsf"}
        The batch system.
    jobs : int, default 1
        How many jobs to keep running (ignored with `adapt`): one that ends,
        at its walltime or cancelled, is replaced by a new submission.
    adapt : (int, int), optional
        ``(minimum, maximum)`` jobs: the cluster submits and cancels jobs as
        the work needs, from `minimum` (0 allowed) to `maximum`.
    **kwargs
        Any argument of dask-jobqueue's cluster class: ``cores``, ``memory``,
        ``queue``, ``account``, ``walltime``, ``job_extra_directives``...

    Returns
    -------
    dask_jobqueue.JobQueueCluster
        The cluster, jobs submitted. Open a ``distributed.Client`` on it and
        close both when done (``with`` does); closing cancels the jobs.

    Raises
    ------
    GeoanomError
        For an unknown `kind`, a batch system whose submit command is not on
        this machine, missing cores or memory, or an argument the cluster
        class refuses.

    Examples
    --------
    >>> from distributed import Client  # doctest: +SKIP
    >>> with jobqueue("slurm", jobs=2, cores=4, memory="16GB", walltime="01:00:00") as cluster, \\
    ...         Client(cluster) as client:  # doctest: +SKIP
    ...     model = ga.fit(training, client=client)
    ...     model.score(cube, client=client).to_zarr("anomalies.zarr")
    >>> cluster = jobqueue("slurm", adapt=(0, 10))  # doctest: +SKIP
    """
    minimum, maximum = _job_counts(jobs, adapt)
    cls = _cluster_class(kind)
    config = kwargs.get("config_name") or kind
    kwargs["job_script_prologue"] = _prologue(kwargs, config)
    if kwargs.get("processes") is None and dask.config.get(f"jobqueue.{config}.processes", None) is None:
        cores = kwargs.get("cores") or dask.config.get(f"jobqueue.{config}.cores", None)
        if cores:
            kwargs["processes"] = int(cores)
    try:
        cluster = cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise GeoanomError(_refusal(kind, config, error)) from None
    # Adaptive even for a fixed count: a scaled cluster does not replace a job that ends (walltime,
    # scancel, preemption) unless asked to scale again, and adapt asks every second.
    cluster.adapt(minimum_jobs=minimum, maximum_jobs=maximum)
    return cluster


def _cluster_class(kind: str) -> Any:
    """dask-jobqueue's cluster class for `kind`, refused in one sentence if unknown or not here."""
    if kind not in JOBQUEUE_CLASSES:
        raise GeoanomError(f"unknown cluster kind {kind!r}: choose one of {', '.join(JOBQUEUE_CLASSES)}.")
    try:
        import dask_jobqueue
    except ImportError:
        raise GeoanomError(f"a {kind} cluster needs dask-jobqueue: pip install dask-jobqueue.") from None
    cls = getattr(dask_jobqueue, JOBQUEUE_CLASSES[kind])
    submit = cls.job_cls.submit_command
    if shutil.which(submit) is None:
        raise GeoanomError(f"cannot submit {kind} jobs from this machine: the command '{submit}' is not on PATH.")
    return cls


def _job_counts(jobs: int, adapt: tuple[int, int] | None) -> tuple[int, int]:
    """(minimum, maximum) jobs, checked."""
    if adapt is None:
        if int(jobs) < 1:
            raise GeoanomError(f"a cluster needs at least 1 job, got {jobs}.")
        return int(jobs), int(jobs)
    minimum, maximum = (int(n) for n in adapt)
    if not 0 <= minimum <= maximum or maximum < 1:
        raise GeoanomError(f"an adaptive cluster needs 0 <= minimum <= maximum and maximum >= 1 jobs, "
                           f"got {minimum}:{maximum}.")
    return minimum, maximum


def _prologue(kwargs: dict, config: str) -> list[str]:
    """The job script's prologue: the caller's (or the configuration's), then geoanom's exports."""
    given = kwargs.get("job_script_prologue")
    if given is None:
        given = kwargs.get("env_extra")  # dask-jobqueue's former name, which it still reads
    if given is None:
        given = (dask.config.get(f"jobqueue.{config}.job-script-prologue", None)
                 or dask.config.get(f"jobqueue.{config}.env-extra", None) or [])
    kwargs.pop("env_extra", None)
    lines = list(given)
    return lines + [line for line in worker_exports() if line not in lines]


def _refusal(kind: str, config: str, error: Exception) -> str:
    """One sentence for a cluster class that refused its arguments."""
    text = str(error)
    if "cores and memory" in text:
        return (f"a {kind} cluster needs the cores and memory of each job: set jobqueue.{config}.cores and "
                f".memory in jobqueue.yaml, or pass them (--cluster-option cores=4 --cluster-option memory=16GB).")
    if unknown := re.search(r"unexpected keyword argument '(\w+)'", text):
        return f"{JOBQUEUE_CLASSES[kind]} takes no option {unknown.group(1)!r} (see dask-jobqueue's documentation)."
    return f"cannot start a {kind} cluster: {text.splitlines()[0].rstrip('.')}."


def parse_jobs(text: str) -> tuple[int, tuple[int, int] | None]:
    """``--jobs``: ``N`` jobs, or ``MIN:MAX`` for an adaptive cluster.

    Examples
    --------
    >>> parse_jobs("4")
    (4, None)
    >>> parse_jobs("0:8")
    (0, (0, 8))
    """
    try:
        if ":" in text:
            low, high = (int(part) for part in text.split(":"))
            _job_counts(0, (low, high))
            return low, (low, high)
        count = int(text)
    except ValueError:
        raise GeoanomError(f"--jobs takes N or MIN:MAX (whole numbers), got {text!r}.") from None
    _job_counts(count, None)
    return count, None


def parse_cluster_options(kind: str, options: Sequence[str]) -> dict[str, Any]:
    """``--cluster-option KEY=VALUE`` texts as keyword arguments of the `kind` cluster class.

    A key may use jobqueue.yaml's dashes or Python's underscores. Values are
    typed: whole numbers become ints, ``true``/``false`` booleans, ``none``
    None; memory (``16GB``) and walltime (``01:00:00``) stay text, as
    dask-jobqueue reads them. A key whose jobqueue setting is a list
    (``job-extra-directives``, ``worker-extra-args``, ``job-script-prologue``)
    gathers every value given for it.

    Examples
    --------
    >>> parse_cluster_options("slurm", ["cores=4", "memory=16GB", "job-extra-directives=--exclusive",
    ...                                 "job_extra_directives=--gres=gpu:1"])  # doctest: +NORMALIZE_WHITESPACE
    {'cores': 4, 'memory': '16GB', 'job_extra_directives': ['--exclusive', '--gres=gpu:1']}
    """
    with contextlib.suppress(ImportError):  # importing it loads dask-jobqueue's settings, which type the values
        import dask_jobqueue  # noqa: F401
    parsed: dict[str, Any] = {}
    for option in options:
        key, equals, value = option.partition("=")
        key = key.strip().replace("-", "_")
        if not equals or not key:
            raise GeoanomError(f"--cluster-option takes KEY=VALUE, got {option!r}.")
        default = dask.config.get(f"jobqueue.{kind}.{key.replace('_', '-')}", None)
        if isinstance(default, list):
            parsed.setdefault(key, []).append(value)
        else:
            parsed[key] = _typed(value)
    return parsed


def _typed(value: str) -> Any:
    """An int, bool or None when the text is one; the text otherwise."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return int(value)
    except ValueError:
        return value


def check_options(workers: int | None = None, scheduler: str | None = None, *,
                  scheduler_file: str | Path | None = None, cluster: str | None = None, jobs: str = "1",
                  options: Sequence[str] = ()) -> None:
    """Refuse, in one sentence, a combination of ``connect``'s arguments it could not start, before anything runs.

    The command line calls it before reading any data; :func:`connect` and
    :func:`make_client` call it too, so the rules live here once.

    Examples
    --------
    >>> check_options(workers=2)
    >>> check_options(jobs="4")
    Traceback (most recent call last):
    ...
    geoanom.errors.GeoanomError: --jobs and --cluster-option need --cluster slurm|pbs|sge|lsf.
    """
    local = [name for name, value in (("--workers", workers), ("--scheduler", scheduler),
                                      ("--scheduler-file", scheduler_file)) if value is not None]
    if cluster is not None:
        if local:
            raise GeoanomError("give either --cluster or --workers/--scheduler/--scheduler-file, not both.")
        parse_jobs(jobs)
        parse_cluster_options(cluster, options)
        return
    if jobs != "1" or options:
        raise GeoanomError("--jobs and --cluster-option need --cluster slurm|pbs|sge|lsf.")
    if len(local) > 1:
        raise GeoanomError(f"give one of {' or '.join(local)}, not {len(local)}.")
    if workers is not None and workers < 1:
        raise GeoanomError(f"--workers must be at least 1, got {workers}.")
    if scheduler_file is not None and not Path(scheduler_file).expanduser().is_file():
        raise GeoanomError(f"no scheduler file at '{scheduler_file}': start the scheduler with "
                           "`dask scheduler --scheduler-file PATH` first.")


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None, *,
            scheduler_file: str | Path | None = None, cluster: str | None = None, jobs: str = "1",
            options: Sequence[str] = ()) -> Iterator[Any]:
    """Within the block, the client of the command line's ``--workers``, ``--scheduler(-file)`` or ``--cluster``.

    Yields None (dask's threaded scheduler) when none is given. A batch
    cluster is built by :func:`jobqueue` from ``--jobs`` (``N`` or
    ``MIN:MAX``) and ``--cluster-option KEY=VALUE``; leaving the block closes
    the client and cancels the cluster's jobs.

    Examples
    --------
    >>> with connect() as client:
    ...     print(client)
    None
    >>> with connect(cluster="slurm", jobs="2", options=["cores=2", "memory=4GB"]) as client:  # doctest: +SKIP
    ...     model = ga.fit(training, client=client)
    """
    check_options(workers, scheduler, scheduler_file=scheduler_file, cluster=cluster, jobs=jobs, options=options)
    if cluster is None:
        client = make_client(workers, scheduler, scheduler_file=scheduler_file)
        with client if client is not None else contextlib.nullcontext():
            yield client
        return
    from distributed import Client

    count, adapt = parse_jobs(jobs)
    with jobqueue(cluster, count, adapt=adapt, **parse_cluster_options(cluster, options)) as batch, \
            Client(batch) as client:
        yield client


def wait_for_jobs(client: Any, jobs: str) -> int:
    """Wait until one worker of each of ``--jobs``' minimum jobs has joined `client`; returns how many there are.

    For work that places itself on the workers present when it starts
    (federated training pins each client's rows to one), rather than
    leaving tasks for the workers that come.

    Examples
    --------
    >>> wait_for_jobs(client, "2")  # doctest: +SKIP
    2
    """
    count, adapt = parse_jobs(jobs)
    if adapt is not None and adapt[0] == 0:
        raise GeoanomError("federated training places every client on a worker from the start: give --jobs N, "
                           "or MIN:MAX with MIN at least 1.")
    client.wait_for_workers(count)
    return len(client.scheduler_info()["workers"])
