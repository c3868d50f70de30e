"""A failure of DVC's told transient or permanent by the types of its exceptions
(`failures`): botocore, aiohttp, asyncssh and OSError, each only when loaded."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys

import aiohttp
import asyncssh
import botocore.exceptions as bc
import pytest
from dvc.exceptions import DvcException

from dvc_invoke.adapters.dvc import failures

URL = "http://127.0.0.1:9/bucket/store"


def client_error(code: str, status: int) -> bc.ClientError:
    response = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bc.ClientError(response, "PutObject")  # type: ignore[arg-type]


def raised_from(cause: BaseException) -> DvcException:
    """A DvcException raised from ``cause``, as DVC wraps what its remote's library raised."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise DvcException("failed to push data to the cloud") from exc
    except DvcException as wrapped:
        return wrapped


TRANSIENT = [
    bc.EndpointConnectionError(endpoint_url=URL),
    bc.ConnectTimeoutError(endpoint_url=URL),
    bc.ReadTimeoutError(endpoint_url=URL),
    bc.ConnectionClosedError(endpoint_url=URL),
    client_error("SlowDown", 503),
    client_error("Throttling", 400),
    client_error("InternalError", 500),
    client_error("Whatever", 502),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
    aiohttp.ServerTimeoutError("timed out"),
    asyncssh.ConnectionLost("connection lost"),
    asyncssh.DisconnectError(asyncssh.DISC_BY_APPLICATION, "closed by the server"),
    asyncssh.SFTPConnectionLost("lost"),
    ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)"),
    OSError(errno.ECONNRESET, "reset"),
    OSError(errno.ETIMEDOUT, "timed out"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    OSError(errno.ENETUNREACH, "Network is unreachable"),
    TimeoutError(),
    socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
]

PERMANENT = [
    bc.NoCredentialsError(),
    bc.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    client_error("AccessDenied", 403),
    client_error("InvalidAccessKeyId", 403),
    client_error("NoSuchBucket", 404),
    asyncssh.PermissionDenied("Permission denied"),
    asyncssh.HostKeyNotVerifiable("Host key is not trusted"),
    asyncssh.SFTPPermissionDenied("denied"),
    asyncssh.SFTPNoSpaceOnFilesystem("full"),
    PermissionError(errno.EACCES, "Permission denied"),
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EROFS, "Read-only file system"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_a_network_failing_for_a_moment_is_transient(exc):
    assert failures.classify([exc]) is True
    assert failures.classify([raised_from(exc)]) is True  # through DVC's own exception


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_a_refusal_no_credentials_or_a_full_disk_is_permanent(exc):
    assert failures.classify([exc]) is False
    assert failures.classify([raised_from(exc)]) is False


def test_a_permanent_cause_wins_over_a_transient_one():
    refused = raised_from(client_error("AccessDenied", 403))
    assert failures.classify([bc.EndpointConnectionError(endpoint_url=URL), refused]) is False


def test_what_no_type_says_is_left_to_the_text():
    assert failures.classify([]) is None
    assert failures.classify([DvcException("1 files failed to upload")]) is None
    assert failures.classify([FileNotFoundError(errno.ENOENT, "no such file")]) is None
    assert failures.classify([socket.gaierror(socket.EAI_NONAME, "Name not known")]) is None


def test_a_chain_that_loops_ends():
    a, b = ConnectionResetError(), ValueError()
    a.__context__, b.__context__ = b, a
    assert failures.classify([a]) is True


def test_no_remote_library_is_imported_to_classify():
    code = (
        "import sys, errno\n"
        "from dvc_invoke.adapters.dvc import failures\n"
        "assert failures.classify([OSError(errno.ECONNREFUSED, 'refused')]) is True\n"
        "assert failures.classify([ValueError()]) is None\n"
        "print(sorted(m for m in ('botocore', 'aiohttp', 'asyncssh') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
