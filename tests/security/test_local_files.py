"""What a cluster leaves on the machine: in a root of the user's own, private, swept once its
processes are gone; and what other users cannot read, swap or stop."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import ember
from ember import connection
from ember.runtime import session, temp_root
from ember.runtime.core import context
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import wait_until_gone
from tests.integration.test_lifecycle import _ember, _free_port
from tests.security.conftest import alive

OTHER_USER = 65534  # nobody


def _mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _clean_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env.pop("EMBER_TOKEN", None)
    env.pop("EMBER_TOKEN_FILE", None)
    return env


@pytest.fixture(scope="module")
def small_store() -> Iterator[object]:
    ctx = ember.init(num_cpus=1, object_store_memory=64 << 20)
    try:
        yield ctx
    finally:
        ember.shutdown()
    assert wait_until_gone(ctx.session_dir) == []


def _store_info() -> pb.StoreInfo:
    core = context.require_core()

    async def ask() -> pb.StoreInfo:
        return await core.channels.node_agent(core.local_agent).GetStoreInfo(pb.Empty())

    return core.io.run(ask())


# ---------------------------------------------------------------------- the root (item 11)


class _Listener:
    """A fake head: records the metadata of every call it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[str, str], ...]] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))

        def record(request: bytes, call: grpc.ServicerContext) -> bytes:
            self.seen.append(tuple(call.invocation_metadata()))  # type: ignore[arg-type]
            call.abort(grpc.StatusCode.UNAVAILABLE, "a fake head")
            return b""

        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "ember.Head", {"GetClusterView": grpc.unary_unary_rpc_method_handler(record)})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


def test_a_root_another_user_made_is_not_trusted(tmp_path: Path) -> None:
    """Before: another user who made the shared root first could swap the pointer to the
    current cluster, and the victim's next ``ember status`` sent the victim's token to the
    address it named."""
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o777)
    os.chown(root, OTHER_USER, OTHER_USER)
    env = _clean_env(EMBER_TEMP_DIR=str(root))
    # The victim's cluster, and its token, in its own session directory.
    victim_session = tmp_path / "victim_session"
    victim_session.mkdir(mode=0o700)
    (victim_session / "token").write_text("the-victims-token-nobody-else-may-read\n")
    os.chmod(victim_session / "token", 0o600)
    fake = _Listener()
    try:
        # What the other user writes into the root it owns: its own head, the victim's session.
        pointer = root / "ember_current_cluster"
        pointer.write_text(f"ember://127.0.0.1:{fake.port}\n{victim_session}\n")
        os.chown(pointer, OTHER_USER, OTHER_USER)
        status = _ember("status", env=env)
        sent = [value for metadata in fake.seen for key, value in metadata if key == "authorization"]
        assert not any("the-victims-token" in value for value in sent), "the victim's token went to the fake head"
        assert status.returncode == 2, status.stdout + status.stderr
        assert f"belongs to uid {OTHER_USER}, not to you" in status.stderr and "EMBER_TEMP_DIR" in status.stderr
        started = _ember("start", "--head", "--port", str(_free_port()), env=env)
        assert started.returncode == 2 and f"belongs to uid {OTHER_USER}" in started.stderr
        auto = subprocess.run([sys.executable, "-c", "import ember; ember.init('auto')"],
                              capture_output=True, text=True, timeout=60, env=env)
        assert auto.returncode != 0 and f"belongs to uid {OTHER_USER}" in auto.stderr
    finally:
        fake.server.stop(0)
        _ember("stop", env=_clean_env(EMBER_TEMP_DIR=str(tmp_path / "mine")))


def test_the_default_root_is_the_users_own_and_private(small_store: object) -> None:
    root = os.path.dirname(small_store.session_dir)  # type: ignore[attr-defined]
    if "EMBER_TEMP_DIR" not in os.environ:
        assert root == f"/tmp/ember-{os.getuid()}"
    assert os.lstat(root).st_uid == os.getuid() and _mode(root) == 0o700


# ---------------------------------------------------------------------- private files (14)


def test_logs_spills_and_arenas_are_private(small_store: object) -> None:
    """Before: log files and spilled objects were 0644, session and arena directories 0755."""
    import numpy as np

    kept = [ember.put(np.full(5 << 20, i, dtype=np.uint8)) for i in range(24)]  # 120 MiB in 64
    assert int(ember.get(kept[0])[0]) == 0  # one comes back from disk
    session_dir = small_store.session_dir  # type: ignore[attr-defined]
    spilled = [str(p) for p in Path(session_dir, "spill").rglob("*") if p.is_file()]
    assert spilled, "nothing was spilled"
    arena = _store_info().arena
    looked = [session_dir, os.path.dirname(arena), arena]
    for path in Path(session_dir).rglob("*"):
        looked.append(str(path))
    wrong = {path: oct(_mode(path)) for path in looked if _mode(path) & 0o077}
    assert not wrong, wrong
    assert len(looked) > 10


# ---------------------------------------------------------------------- sweeping (16)


def test_ended_sessions_beyond_the_newest_few_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every session directory stayed (a new user found 115 after a day)."""
    root = tmp_path / "ember"
    monkeypatch.setenv("EMBER_TEMP_DIR", str(root))
    temp_root.ensure()
    made = []
    for day in range(1, session.KEEP_ENDED + 5):  # sessions whose clusters stopped, oldest first
        path = root / f"session_2030-01-{day:02d}_00-00-00_1_abcdef"
        (path / "logs").mkdir(parents=True)
        (path / session.LOCK).touch()
        os.utime(path, (day * 86400.0, day * 86400.0))
        made.append(str(path))
    # One is still in use by some process; one was made by an older ember (no lock file).
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
         "fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); time.sleep(120)",
         os.path.join(made[0], session.LOCK)],
        stdout=subprocess.PIPE, text=True,
    )
    newest = ""
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        legacy = root / "session_2020-01-01_00-00-00_1_abcdef"
        (legacy / "logs").mkdir(parents=True)
        newest = session.new_session_dir()
        left = sorted(str(p) for p in root.iterdir() if p.name.startswith("session_"))
        expected = sorted([made[0], str(legacy), newest, *made[-session.KEEP_ENDED:]])
        assert left == expected
    finally:
        holder.kill()
        holder.wait()
        if newest:
            session.release(newest)


# ---------------------------------------------------------------------- ember stop (18)


def test_ember_stop_stops_only_the_users_own_processes(tmp_path: Path) -> None:
    """Before: ``ember stop`` stopped every process recorded in the shared directory, whoever
    ran it (as root: other users' clusters too)."""
    env = _clean_env(EMBER_TEMP_DIR=str(tmp_path / "ember"))
    # Another user's process that looks like an ember daemon. (Started through setpriv: Popen's
    # own user= forks this process, gRPC threads and all, and such a fork can crash.)
    theirs = subprocess.Popen(
        ["setpriv", f"--reuid={OTHER_USER}", f"--regid={OTHER_USER}", "--clear-groups",
         "/bin/sh", "-c", "sleep 120", "ember.runtime.head_main"],
        start_new_session=True,
    )
    try:
        started = _ember("start", "--head", "--port", str(_free_port()), "--num-cpus", "1", env=env)
        assert started.returncode == 0, started.stderr
        assert os.stat(f"/proc/{theirs.pid}").st_uid == OTHER_USER and theirs.poll() is None
        (record,) = (tmp_path / "ember" / "started").glob("*.json")
        # A record naming another user's process (a pid reused, a record tampered with).
        import json

        data = json.loads(record.read_text())
        mine = list(data["pids"])
        data["pids"] = mine + [theirs.pid]
        record.write_text(json.dumps(data))
        stopped = _ember("stop", env=env)
        assert stopped.returncode == 0
        assert "Stopped the cluster at" in stopped.stdout, stopped.stdout
        assert theirs.poll() is None, "ember stop stopped another user's process"
        assert not any(alive(pid) for pid in mine)
    finally:
        theirs.kill()
        theirs.wait()
        _ember("stop", env=env)


# ---------------------------------------------------------------------- ember logs (13)


def test_a_link_in_the_logs_does_not_lead_out_of_them(small_store: object) -> None:
    """Before: ``logs/x.log -> ../token`` was listed and read: ``ember logs x.log`` printed the
    cluster's token."""
    session_dir = small_store.session_dir  # type: ignore[attr-defined]
    link = os.path.join(session_dir, "logs", "x.log")
    os.symlink("../token", link)
    try:
        core = context.require_core()
        agent = connection._view().nodes[0].info.address

        async def listed() -> list[str]:
            return [f.name for f in (await core.channels.node_agent(agent).ListLogs(pb.Empty())).files]

        async def tail() -> str | grpc.aio.AioRpcError:
            try:
                return (await core.channels.node_agent(agent).TailLog(pb.TailRequest(name="x.log"))).text
            except grpc.aio.AioRpcError as error:
                return error

        assert "x.log" not in core.io.run(listed())
        read = core.io.run(tail())
        assert isinstance(read, grpc.aio.AioRpcError), f"read through the link: {read!r}"
        assert read.code() == grpc.StatusCode.NOT_FOUND and "not a log file" in (read.details() or "")
    finally:
        os.unlink(link)


def test_read_own_refuses_links_and_other_users_files(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.write_text("ok")
    assert temp_root.read_own(str(mine)) == "ok"
    (tmp_path / "link").symlink_to(mine)
    with pytest.raises(OSError):
        temp_root.read_own(str(tmp_path / "link"))
    theirs = tmp_path / "theirs"
    theirs.write_text("planted")
    os.chown(theirs, OTHER_USER, OTHER_USER)
    with pytest.raises(temp_root.RootError, match="not a file of yours"):
        temp_root.read_own(str(theirs))
