"""Whether a failure of DVC's is for a moment or for good, told by the types of its exceptions.

DVC runs in this process (`inprocess`): the exceptions behind a failed
``dvc push`` or ``dvc pull`` are there to read, and their types say what
their text does not (botocore's "Could not connect to the endpoint URL" says
neither "timed out" nor "refused"). What reached a remote's library
(botocore, aiohttp, asyncssh) is only known to it when that library is
already loaded: nothing here imports one, so a run without S3 or SSH never
pays for them. Git runs as a process: its text is still what tells
(`workspace.transient`).
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import Any

# The network failing for a moment: retried.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.EPIPE,
    }
)
# What waiting does not mend: refused access, a full or read-only disk.
PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# A name server that did not answer this time ("Temporary failure in name resolution").
_EAI_AGAIN = getattr(socket, "EAI_AGAIN", -3)

# S3's (and botocore's) error codes of a service that is busy or failing for a moment.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
    }
)


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    here: BaseException | None = exc
    while here is not None and id(here) not in seen:
        seen.add(id(here))
        yield here
        here = here.__cause__ or here.__context__


def classify(exceptions: Iterable[BaseException]) -> bool | None:
    """True when the exceptions behind a failure (and those they came from) say
    the network failed for a moment; False when any of them says it failed for
    good (no credentials, access denied, a full disk: waiting mends nothing);
    None when no type says either, and the failure's text is left to tell."""
    verdicts = {kind(each) for exc in exceptions for each in chain(exc)}
    if False in verdicts:
        return False
    if True in verdicts:
        return True
    return None


def kind(exc: BaseException) -> bool | None:
    """What ``exc`` alone says: True for a moment, False for good, None nothing."""
    for judge in (_botocore, _aiohttp, _asyncssh, _oserror):
        said = judge(exc)
        if said is not None:
            return said
    return None


def _loaded(name: str) -> Any:
    # Never imported here: a library nobody loaded raised nothing.
    return sys.modules.get(name)


def _botocore(exc: BaseException) -> bool | None:
    bc = _loaded("botocore.exceptions")
    if bc is None:
        return None
    if isinstance(
        exc,
        (
            bc.NoCredentialsError,
            bc.PartialCredentialsError,
            bc.UnknownCredentialError,
            bc.SSLError,  # a certificate: not mended by waiting
        ),
    ):
        return False
    if isinstance(
        exc,
        (
            bc.ConnectionError,  # endpoint, connect timeout, proxy
            bc.HTTPClientError,  # read timeout, closed, streaming
            bc.IncompleteReadError,
        ),
    ):
        return True
    if isinstance(exc, bc.ClientError):
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in TRANSIENT_CODES or code in ("429", "500", "502", "503", "504"):
            return True
        if isinstance(status, int) and (status == 429 or status >= 500):
            return True
        return False  # 403 AccessDenied, InvalidAccessKeyId, NoSuchBucket: said by the service
    return None


def _aiohttp(exc: BaseException) -> bool | None:
    aio = _loaded("aiohttp")
    if aio is None:
        return None
    if isinstance(exc, aio.ClientSSLError):
        return False
    if isinstance(
        exc,
        (
            aio.ClientConnectionError,  # refused, disconnected, timed out
            aio.ClientPayloadError,  # the body cut short
        ),
    ):
        return True
    if isinstance(exc, aio.ClientResponseError):
        status = getattr(exc, "status", 0) or 0
        return status == 429 or status >= 500
    return None


def _asyncssh(exc: BaseException) -> bool | None:
    ssh = _loaded("asyncssh")
    if ssh is None:
        return None
    if isinstance(
        exc,
        (
            ssh.PermissionDenied,
            ssh.HostKeyNotVerifiable,
            ssh.IllegalUserName,
            ssh.ProtocolNotSupported,
            ssh.KeyExchangeFailed,
            ssh.SFTPPermissionDenied,
            ssh.SFTPNoSpaceOnFilesystem,
            ssh.SFTPQuotaExceeded,
            ssh.SFTPWriteProtect,
        ),
    ):
        return False
    if isinstance(
        exc,
        (
            ssh.DisconnectError,  # connection lost, closed by the server
            ssh.ChannelOpenError,
            ssh.SFTPConnectionLost,
            ssh.SFTPNoConnection,
        ),
    ):
        return True
    return None


def _oserror(exc: BaseException) -> bool | None:
    if isinstance(exc, socket.gaierror):
        return True if exc.errno == _EAI_AGAIN else None
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in PERMANENT_ERRNOS:
            return False
        if exc.errno in TRANSIENT_ERRNOS:
            return True
    if isinstance(exc, PermissionError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, *_timeouts())):
        return True
    return None


def _timeouts() -> tuple[type[BaseException], ...]:
    """asyncio's and concurrent.futures' timeouts, where they are not the built-in one (3.10)."""
    found = []
    for module in ("asyncio.exceptions", "concurrent.futures._base"):
        kind = getattr(_loaded(module), "TimeoutError", None)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            found.append(kind)
    return tuple(found)
