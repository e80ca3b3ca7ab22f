"""``ember job``: submit a program to a cluster, follow it, stop it — as ``ray job`` does.

    ember job submit --working-dir . -- python -m myproject.train
    ember job submit --no-wait --submission-id nightly -- python train.py --epochs 3
    ember job status nightly          ember job logs nightly -f
    ember job stop nightly            ember job list            ember job delete nightly

Every subcommand talks to the head's client port (``--address``, else ``EMBER_ADDRESS``, else
the cluster ``ember start`` left on this machine) with the cluster token (``EMBER_TOKEN`` or
``EMBER_TOKEN_FILE``, else that cluster's), so it works from a laptop through ``kubectl
port-forward svc/<cluster>-head 10001`` as it does on the head's machine.

``submit`` waits for the job and streams its output unless ``--no-wait``; it exits 0 when the
job succeeded, 1 otherwise (a Kubernetes Job running it fails with the job). The command after
``--`` is the entrypoint: one argument is taken as a shell command line as it is (``-- "python
a.py && python b.py"``); several are quoted and joined, so each stays one argument.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from typing import Any

from ember.job_submission import JobDetails, JobStatus, JobSubmissionClient
from ember.runtime.wire.runtime_env import RuntimeEnvError


class CommandError(Exception):
    """Said on stderr as ``ember job <command>: <message>``; exit status 2 for bad input."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_parser(commands: Any) -> None:
    job = commands.add_parser("job", help="submit a program to a cluster, follow it, stop it (like ray job)")
    verbs = job.add_subparsers(dest="job_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--address", help="the head's client address, ember://HOST:PORT (default: "
                            "EMBER_ADDRESS, else the cluster ember start runs here)")

    submit = verbs.add_parser("submit", help="submit a job; wait for it and print its output unless --no-wait")
    common(submit)
    submit.add_argument("--working-dir", help="a local directory (or .zip) to run the entrypoint in, "
                        "uploaded to the cluster; or an http(s) URL of a zip")
    submit.add_argument("--runtime-env-json", help="the job's runtime_env as JSON, e.g. "
                        "'{\"env_vars\": {\"A\": \"1\"}}' (--working-dir overrides its working_dir)")
    submit.add_argument("--runtime-env", metavar="FILE", help="the job's runtime_env from a JSON or YAML file")
    submit.add_argument("--submission-id", help="the job's name (default: one is made up)")
    submit.add_argument("--metadata-json", help="metadata as a JSON object of strings")
    submit.add_argument("--entrypoint-num-cpus", type=float, help="CPUs the entrypoint holds (it then runs "
                        "on a node with them free; without entrypoint resources it runs on the head's node)")
    submit.add_argument("--entrypoint-num-gpus", type=float)
    submit.add_argument("--entrypoint-memory", type=int, help="bytes of memory the entrypoint holds")
    submit.add_argument("--entrypoint-resources", help="custom resources as JSON, e.g. '{\"disk\": 1}'")
    submit.add_argument("--no-wait", action="store_true", help="return once the job is submitted")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    submit.set_defaults(job_run=_submit)

    for name, handler, about in (
        ("status", _status, "a job's status"),
        ("stop", _stop, "stop a job: SIGTERM, then SIGKILL after the grace period"),
        ("delete", _delete, "forget a job that ended, with its output"),
    ):
        verb = verbs.add_parser(name, help=about)
        common(verb)
        verb.add_argument("submission_id", metavar="SUBMISSION_ID")
        verb.set_defaults(job_run=handler)
        if name == "stop":
            verb.add_argument("--grace-period", type=float, help="seconds between SIGTERM and SIGKILL (default 3)")
            verb.add_argument("--no-wait", action="store_true", help="return once the stop is asked for")

    logs = verbs.add_parser("logs", help="print a job's output")
    common(logs)
    logs.add_argument("submission_id", metavar="SUBMISSION_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(job_run=_logs)

    listing = verbs.add_parser("list", help="every job the head knows")
    common(listing)
    listing.set_defaults(job_run=_list)
    job.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return int(args.job_run(args))
    except CommandError as error:
        print(f"ember job {args.job_command}: {error}", file=sys.stderr)
        return error.status
    except (RuntimeEnvError, ValueError) as error:
        print(f"ember job {args.job_command}: {error}", file=sys.stderr)
        return 2
    except (ConnectionError, RuntimeError) as error:
        print(f"ember job {args.job_command}: {error}", file=sys.stderr)
        return 1


def _client(args: argparse.Namespace) -> JobSubmissionClient:
    return JobSubmissionClient(args.address)


# ---------------------------------------------------------------------- submit


def _submit(args: argparse.Namespace) -> int:
    command = list(args.entrypoint)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CommandError("give the command to run after --, e.g. ember job submit -- python train.py", 2)
    entrypoint = command[0] if len(command) == 1 else shlex.join(command)
    runtime_env = _runtime_env(args)
    client = _client(args)
    submission_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env=runtime_env,
        submission_id=args.submission_id,
        metadata=_json_object(args.metadata_json, "--metadata-json", str),
        entrypoint_num_cpus=args.entrypoint_num_cpus,
        entrypoint_num_gpus=args.entrypoint_num_gpus,
        entrypoint_memory=args.entrypoint_memory,
        entrypoint_resources=_json_object(args.entrypoint_resources, "--entrypoint-resources", float),
    )
    print(f"Job '{submission_id}' submitted to {client.address}.", flush=True)
    if args.no_wait:
        print(f"  status: ember job status {submission_id}")
        print(f"  logs:   ember job logs {submission_id} -f")
        print(f"  stop:   ember job stop {submission_id}")
        return 0
    print(f"Its output follows; Ctrl-C stops following, not the job (ember job stop {submission_id}).", flush=True)
    print("-" * 40, flush=True)
    if not _follow(client, submission_id):
        return 0
    return _final(client.get_job_info(submission_id))


def _runtime_env(args: argparse.Namespace) -> dict[str, Any]:
    if args.runtime_env_json and args.runtime_env:
        raise CommandError("give --runtime-env-json or --runtime-env, not both", 2)
    env: dict[str, Any] = {}
    if args.runtime_env_json:
        try:
            env = json.loads(args.runtime_env_json)
        except ValueError as error:
            raise CommandError(f"--runtime-env-json is not valid JSON: {error}", 2) from None
    elif args.runtime_env:
        env = _read_runtime_env(args.runtime_env)
    if not isinstance(env, dict):
        raise CommandError("the runtime_env must be a JSON object", 2)
    if args.working_dir:
        env["working_dir"] = args.working_dir
    return env


def _read_runtime_env(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as error:
        raise CommandError(f"--runtime-env {path}: {error}", 2) from None
    try:
        value = json.loads(text)
    except ValueError:
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise CommandError(f"--runtime-env {path} is neither JSON nor YAML: {error}", 2) from None
    if not isinstance(value, dict):
        raise CommandError(f"--runtime-env {path} must hold an object (a mapping)", 2)
    return value


def _json_object(text: str | None, flag: str, kind: type) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise CommandError(f"{flag} is not valid JSON: {error}", 2) from None
    if not isinstance(value, dict):
        raise CommandError(f"{flag} must be a JSON object", 2)
    for key, item in value.items():
        if kind is str and not isinstance(item, str):
            raise CommandError(f"{flag}: {key!r} must be a string, not {item!r}", 2)
        if kind is float and (isinstance(item, bool) or not isinstance(item, int | float)):
            raise CommandError(f"{flag}: {key!r} must be a number, not {item!r}", 2)
    return value


def _follow(client: JobSubmissionClient, submission_id: str) -> bool:
    """Print the job's output until it ends; False when the user stopped following."""

    async def copy() -> None:
        async for data in client.follow_bytes(submission_id):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    try:
        asyncio.run(copy())
    except KeyboardInterrupt:
        print(f"\nStopped following; job '{submission_id}' goes on (ember job stop {submission_id} "
              f"stops it).", file=sys.stderr)
        return False
    return True


def _final(job: JobDetails) -> int:
    print("-" * 40)
    print(f"Job '{job.submission_id}' {job.status}: {job.message}")
    return 0 if job.status == JobStatus.SUCCEEDED else 1


# ---------------------------------------------------------------------- the others


def _status(args: argparse.Namespace) -> int:
    job = _client(args).get_job_info(args.submission_id)
    print(f"Job '{job.submission_id}': {job.status}")
    print(f"  {job.message}")
    if job.status == JobStatus.FAILED and job.error_type:
        print(f"  error type: {job.error_type}")
    if job.driver_exit_code is not None:
        print(f"  exit code: {job.driver_exit_code}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    client = _client(args)
    if not client.stop_job(args.submission_id, args.grace_period):
        job = client.get_job_info(args.submission_id)
        print(f"Job '{args.submission_id}' has ended already ({job.status}).")
        return 0
    print(f"Asked job '{args.submission_id}' to stop.", flush=True)
    if args.no_wait:
        return 0
    while True:
        job = client.get_job_info(args.submission_id)
        if job.status.is_terminal():
            print(f"Job '{job.submission_id}' {job.status}: {job.message}")
            return 0
        time.sleep(0.2)


def _delete(args: argparse.Namespace) -> int:
    _client(args).delete_job(args.submission_id)
    print(f"Job '{args.submission_id}' deleted.")
    return 0


def _logs(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.follow:
        _follow(client, args.submission_id)
        return 0
    sys.stdout.write(client.get_job_logs(args.submission_id))
    sys.stdout.flush()
    return 0


def _list(args: argparse.Namespace) -> int:
    jobs = _client(args).list_jobs()
    if not jobs:
        print("No jobs.")
        return 0
    rows = [("SUBMISSION ID", "STATUS", "SUBMITTED", "ENTRYPOINT", "MESSAGE")]
    for job in jobs:
        submitted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((job.submit_time or 0) / 1000))
        rows.append((job.submission_id, str(job.status), submitted, _short(job.entrypoint, 40), _short(job.message, 60)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
