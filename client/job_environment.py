"""What a job's entrypoint learns from its environment: its submission id and runtime_env.

A job submitted with ``ember job submit`` (or ``JobSubmissionClient``) runs its entrypoint under
a supervisor that sets ``EMBER_ADDRESS`` and ``EMBER_TOKEN`` (so ``ember.init()`` joins the
cluster), ``EMBER_JOB_SUBMISSION_ID`` and ``EMBER_JOB_RUNTIME_ENV``: the job's runtime_env as
JSON, its working_dir already the package URI the cluster holds (the entrypoint itself runs in
that directory, unpacked). ``ember.init()`` in the entrypoint reads it here, so that the job's
runtime_env is the driver's job-wide one, as in Ray.
"""

from __future__ import annotations

import os
from typing import Any

from ember.runtime.wire import runtime_env as env_spec

ENV_RUNTIME_ENV = "EMBER_JOB_RUNTIME_ENV"
ENV_SUBMISSION_ID = "EMBER_JOB_SUBMISSION_ID"


def runtime_env() -> dict[str, Any]:
    """The runtime_env of the job this process is the entrypoint of ({} outside a job); a
    malformed one is a ``ValueError`` naming the variable and the field."""
    text = os.environ.get(ENV_RUNTIME_ENV, "")
    try:
        return env_spec.parse_json(text, ENV_RUNTIME_ENV)
    except env_spec.RuntimeEnvError as error:
        raise ValueError(str(error)) from None


def submission_id() -> str | None:
    """The submission id of the job this process is the entrypoint of (None outside a job)."""
    return os.environ.get(ENV_SUBMISSION_ID) or None
