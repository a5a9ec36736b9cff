"""The client side of a token-protected Ray cluster, and a quick look at an address before joining it.

Ray sends its token only when ``RAY_AUTH_MODE=token`` is in the *client's* environment: a user who
exported ``RAY_AUTH_TOKEN_PATH`` (as README says) would otherwise get "Missing authentication token".
``use_token`` turns the client side on from the token alone (``--token-file``, ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), so one setting is enough.

``probe_gcs`` asks the cluster's GCS one question (its cluster id) with a deadline of seconds before
``ray.init``: a dead address or a refused token is then one clear line, instead of Ray retrying for
minutes (dead address) or printing a warning a second for 25 s (no token).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from taskgraph.errors import ExecutionError

__all__ = ["TokenSource", "use_token", "send_token_file", "token_source", "probe_gcs", "probe_port", "auth_hint",
           "PROBE_TIMEOUT_S"]

#: How long the probes wait for an answer: a head on another continent answers in well under a second.
PROBE_TIMEOUT_S = 5.0
_MODE = "RAY_AUTH_MODE"
_TOKEN = "RAY_AUTH_TOKEN"
_TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"


@dataclass(frozen=True)
class TokenSource:
    """Where this process's token comes from, in Ray's order, as words for messages."""

    where: str
    token: str


def _default_token_file() -> Path:
    return Path.home() / ".ray" / "auth_token"


def _read(path: Path, where: str, fix: str) -> str:
    try:
        token = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ExecutionError(f"{where}: cannot read the token file {path}: {exc.strerror}. {fix}") from None
    if not token:
        raise ExecutionError(f"{where}: the token file {path} is empty. {fix}")
    return token


def token_source() -> TokenSource | None:
    """The token Ray would send from this environment, whatever ``RAY_AUTH_MODE`` says (None: none)."""
    fix = "Point it at the cluster's token file (secrets/ray_auth_token on the head)."
    if os.environ.get(_TOKEN, "").strip():
        return TokenSource(_TOKEN, os.environ[_TOKEN].strip())
    if os.environ.get(_TOKEN_PATH, "").strip():
        path = Path(os.environ[_TOKEN_PATH])
        return TokenSource(f"{_TOKEN_PATH}={path}", _read(path, _TOKEN_PATH, fix))
    default = _default_token_file()
    if default.is_file():
        return TokenSource(str(default), _read(default, str(default), fix))
    return None


def use_token(token_file: str | os.PathLike[str] | None = None) -> TokenSource | None:
    """Make this process (and Ray in it) send the cluster token, when there is one.

    ``token_file`` (``--token-file``) wins over the environment. With a token found and
    ``RAY_AUTH_MODE`` unset, the client side of token auth is switched on here, as Ray itself
    does for ``ray.init(address="auto")``; an explicit ``RAY_AUTH_MODE`` is respected.
    """
    if token_file is not None:
        path = Path(token_file).expanduser().resolve()
        _read(path, f"--token-file {token_file}", "Pass the cluster's token file (secrets/ray_auth_token on the head).")
        os.environ[_TOKEN_PATH] = str(path)
        os.environ.pop(_TOKEN, None)  # Ray prefers RAY_AUTH_TOKEN to the file: the option must win
    source = token_source()
    if source is not None and os.environ.get(_MODE) is None:
        os.environ[_MODE] = "token"
        _refresh_ray()
    elif token_file is not None:
        _refresh_ray()
    return source


def send_token_file(path: str | os.PathLike[str]) -> Callable[[], None]:
    """Make this process send the token in ``path`` and nothing else (taskgraph's warm local Ray, whose
    token only taskgraph holds), whatever the environment says; returns what puts the environment back.

    Unlike ``use_token`` this overrides an explicit ``RAY_AUTH_MODE`` and ``RAY_AUTH_TOKEN``: the
    head it is for always has token auth on, with this token.
    """
    saved = {key: os.environ.get(key) for key in (_MODE, _TOKEN, _TOKEN_PATH)}
    os.environ.update({_MODE: "token", _TOKEN_PATH: str(path)})
    os.environ.pop(_TOKEN, None)
    _refresh_ray()

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_ray()

    return restore


def _refresh_ray() -> None:
    """Ray caches the auth mode and the token when imported; make it read the environment again."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token auth: nothing to refresh
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def auth_hint(what: str, source: TokenSource | None) -> str:
    """One sentence for a refused token: which was sent (if any) and how to send the right one."""
    if source is None or os.environ.get(_MODE, "").lower() == "disabled":
        return (f"{what} wants a token: set {_TOKEN_PATH}=FILE (the cluster's token file, secrets/ray_auth_token "
                "on the head) or pass --token-file FILE")
    return (f"{what} refused the token from {source.where}: it is not the cluster's token. Use the head's token file "
            f"(secrets/ray_auth_token) with --token-file FILE or {_TOKEN_PATH}=FILE")


def probe_port(host: str, port: int, what: str, shown: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """A TCP connection to ``host:port`` within ``timeout`` seconds, or one line saying nothing answers
    at ``shown`` (the address as the user gave it)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = f"no answer within {timeout:.0f} s" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise ExecutionError(
            f"nothing answers at {shown or f'{host}:{port}'} ({what}): {reason}. Is the cluster up, the address "
            f"right, and port {port} open from this machine?"
        ) from None


def probe_gcs(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Ask the GCS at ``host:port`` (or the Ray Client server at ``ray://host:port``) one cheap question,
    sending the token as Ray would.

    Raises ``ExecutionError`` with one line when nothing answers in ``timeout`` seconds or the
    cluster refuses the token; passes silently when it answers (or speaks no gRPC we know).
    """
    import grpc

    client = address.startswith("ray://")
    target = address[len("ray://"):].rstrip("/") if client else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: leave it to Ray's own message
    what = "the Ray Client server" if client else "the Ray cluster's GCS"
    source = token_source() if os.environ.get(_MODE, "").lower() == "token" else None
    metadata = (("authorization", f"Bearer {source.token}"),) if source else ()
    channel = grpc.insecure_channel(target)
    try:
        _ask(channel, client, timeout, metadata)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise ExecutionError(auth_hint(f"the cluster at {address}", source) + ".") from None
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            reason = f"no answer within {timeout:.0f} s" if code == grpc.StatusCode.DEADLINE_EXCEEDED \
                else "connection refused or host unreachable"
            port_hint = "the head's host:10001, port 10001" if client else "the head's host:6379, port 6379"
            raise ExecutionError(
                f"nothing answers at {address} ({what}): {reason}. Is the cluster up, the address right "
                f"({port_hint} open from this machine)?"
            ) from None
    finally:
        channel.close()


def _ask(channel, client: bool, timeout: float, metadata: tuple) -> None:  # noqa: ANN001
    """One unary call: the GCS's cluster id, or a Ray Client PING. Either needs the token, not a session."""
    if client:
        from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc

        ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
            ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING), timeout=timeout,
            metadata=metadata, wait_for_ready=False)
    else:
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(), timeout=timeout, metadata=metadata, wait_for_ready=False)
