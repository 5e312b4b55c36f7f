"""Signed client updates, so institutions that do not trust each other can check every round.

Each client holds an Ed25519 key pair (:class:`ClientKeys`) and signs every
update it sends; the server knows only the public keys and checks each
update with :class:`UpdateVerifier` before it is aggregated.

Two byte strings are fixed here, so any implementation can reproduce them:

Parameter digest (:func:`parameter_digest`)
    SHA-256 of ``b"geoanom-parameters/1\\x00"``, the number of dimensions
    (4-byte big-endian), each dimension (8-byte big-endian), then the
    values as little-endian float64 (``'<f8'``) in C order.

Signed message (:func:`signed_message`)
    ``b"geoanom-update/1\\x00"``, the round (8-byte big-endian unsigned),
    then the client id (UTF-8), the nonce and the digest, each preceded by
    its length (4-byte big-endian). The tag keeps a signature over an update
    from being valid for anything else the key signs; the length prefixes
    keep two different tuples from giving the same bytes.

The signature covers the digest, not the values: the server recomputes the
digest from the values it received, so neither can change unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import struct
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from ..errors import GeoanomError

DIGEST_TAG = b"geoanom-parameters/1\x00"
MESSAGE_TAG = b"geoanom-update/1\x00"
NONCE_BYTES = 16
DIGEST_BYTES = 32
KEY_BYTES = 32
MAX_ROUND = 2**64 - 1

REFUSALS = ("unsigned", "unknown client", "bad signature", "digest mismatch", "replayed nonce", "stale round",
            "future round", "bad payload")
"""Every reason :meth:`UpdateVerifier.check` may give for refusing an update."""


class SigningError(GeoanomError, ValueError):
    """A key, nonce, round or parameter vector cannot be signed or trusted."""


def parameter_digest(parameters: np.ndarray) -> bytes:
    """SHA-256 of a parameter array's canonical encoding (see the module docstring).

    Parameters
    ----------
    parameters : ndarray of real numbers
        Converted to little-endian float64 in C order before hashing, so the
        digest does not depend on the platform or the array's memory layout.

    Returns
    -------
    bytes
        32 bytes.
    """
    array = np.asarray(parameters)
    if array.dtype.kind not in "biuf":
        raise SigningError(f"parameters must be real numbers, got dtype {array.dtype}.")
    array = np.asarray(array, dtype="<f8", order="C")
    hasher = hashlib.sha256(DIGEST_TAG)
    hasher.update(struct.pack(">I", array.ndim))
    hasher.update(b"".join(struct.pack(">Q", size) for size in array.shape))
    hasher.update(array.data)  # C-contiguous, so no copy of a large vector
    return hasher.digest()


def signed_message(round_number: int, client_id: str, nonce: bytes, digest: bytes) -> bytes:
    """The exact bytes a client signs for an update (see the module docstring)."""
    fields = (client_id.encode("utf-8"), bytes(nonce), bytes(digest))
    return MESSAGE_TAG + struct.pack(">Q", round_number) + b"".join(struct.pack(">I", len(f)) + f for f in fields)


@dataclass(frozen=True, eq=False)
class SignedUpdate:
    """A client's parameter vector for one round, with the signature that vouches for it.

    ``eq=False``: two updates are the same only if they are the same object;
    comparing the arrays field by field would be ambiguous.

    Attributes
    ----------
    round : int
        The round the client trained for.
    client : str
        The client's id, as the server knows its public key.
    nonce : bytes
        16 random bytes, never reused, so a recorded update cannot be replayed.
    digest : bytes
        :func:`parameter_digest` of ``parameters``.
    signature : bytes
        Ed25519 signature (64 bytes) of :func:`signed_message`.
    parameters : ndarray
        The update itself (float64), read-only.
    """

    round: int
    client: str
    nonce: bytes
    digest: bytes
    signature: bytes
    parameters: np.ndarray

    def __repr__(self) -> str:  # the default would print the whole vector
        return (f"SignedUpdate(round={self.round}, client={self.client!r}, nonce={self.nonce.hex()}, "
                f"digest={self.digest.hex()[:16]}..., parameters=<{np.shape(self.parameters)}>)")


class ClientKeys:
    """One client's Ed25519 key pair; the private key stays with the institution.

    The object refuses to be pickled, so it cannot travel to the server or a
    scheduler by accident; store :meth:`private_bytes` at the institution and
    reload it with :meth:`from_private_bytes`.
    """

    def __init__(self, private_key: Ed25519PrivateKey):
        if not isinstance(private_key, Ed25519PrivateKey):
            raise SigningError(f"ClientKeys needs an Ed25519 private key, got {type(private_key).__name__}.")
        self._private = private_key

    @classmethod
    def generate(cls) -> ClientKeys:
        """A fresh key pair from the operating system's random source."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> ClientKeys:
        """The key pair of a raw 32-byte private key saved with :meth:`private_bytes`."""
        if not isinstance(data, bytes) or len(data) != KEY_BYTES:
            raise SigningError(f"A raw Ed25519 private key is {KEY_BYTES} bytes long.")
        return cls(Ed25519PrivateKey.from_private_bytes(data))

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key, to give to the server."""
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key, for storing at the institution only."""
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign_update(self, round_number: int, client_id: str, nonce: bytes | None, parameters: np.ndarray
                    ) -> SignedUpdate:
        """Sign a parameter vector for one round.

        Parameters
        ----------
        round_number : int
            The round this update answers (0 to 2**64 - 1).
        client_id : str
            The id the server knows this client's public key by.
        nonce : bytes or None
            16 random bytes never used before by this client; None draws them
            with :func:`secrets.token_bytes`.
        parameters : ndarray
            The update; copied as read-only float64, so later changes to the
            caller's array cannot break the signature.

        Returns
        -------
        SignedUpdate
        """
        _check_round(round_number)
        if not isinstance(client_id, str):
            raise SigningError(f"client_id must be a str, got {type(client_id).__name__}.")
        nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
            raise SigningError(f"nonce must be {NONCE_BYTES} bytes.")
        values = np.array(parameters, dtype=np.float64, copy=True)
        values.setflags(write=False)
        digest = parameter_digest(values)
        signature = self._private.sign(signed_message(int(round_number), client_id, nonce, digest))
        return SignedUpdate(int(round_number), client_id, nonce, digest, signature, values)

    def __repr__(self) -> str:  # never the private key
        return f"ClientKeys(public={self.public_bytes().hex()})"

    def __reduce__(self):
        raise TypeError("ClientKeys cannot be pickled; store private_bytes() at the institution instead.")


class UpdateVerifier:
    """The server's check of signed updates: who sent it, for which round, intact, fresh and sane.

    Parameters
    ----------
    public_keys : mapping of str to bytes
        Each client's raw 32-byte Ed25519 public key.
    expected_size : int
        Length of every parameter vector.
    max_abs : float, default 1e6
        Largest absolute value accepted in a vector.

    Notes
    -----
    Nonces are remembered per client, for the life of the verifier, and only
    for accepted updates, so a refused update never blocks an honest one.
    """

    def __init__(self, public_keys: Mapping[str, bytes], expected_size: int, max_abs: float = 1e6):
        if int(expected_size) < 1:
            raise SigningError(f"expected_size must be at least 1, got {expected_size}.")
        if not (math.isfinite(max_abs) and max_abs > 0):
            raise SigningError(f"max_abs must be a positive finite number, got {max_abs}.")
        self.expected_size, self.max_abs = int(expected_size), float(max_abs)
        self._keys = {client: _public_key(client, key) for client, key in public_keys.items()}
        self._nonces: dict[str, set[bytes]] = {client: set() for client in self._keys}

    def check(self, update: SignedUpdate | Any, current_round: int) -> str | None:
        """None if the update may be aggregated in ``current_round``; else why not (one of :data:`REFUSALS`).

        The checks run cheapest first: the payload's type, size and values
        before anything is hashed, then the signature, the digest, the round
        and the nonce. In async mode, pass the round the update was
        dispatched in: the signed round must equal it.
        """
        if not isinstance(update, SignedUpdate) or _missing(update.signature):
            return "unsigned"
        if not _well_formed(update):
            return "bad payload"
        if update.client not in self._keys:
            return "unknown client"
        if not self._sane(update.parameters):
            return "bad payload"
        message = signed_message(int(update.round), update.client, update.nonce, update.digest)
        try:
            self._keys[update.client].verify(update.signature, message)
        except InvalidSignature:
            return "bad signature"
        if not hmac.compare_digest(parameter_digest(update.parameters), update.digest):
            return "digest mismatch"
        if update.round < current_round:
            return "stale round"
        if update.round > current_round:
            return "future round"
        if update.nonce in self._nonces[update.client]:
            return "replayed nonce"
        self._nonces[update.client].add(update.nonce)
        return None

    def _sane(self, parameters: Any) -> bool:
        # Size first: a huge or oddly shaped array is refused before any pass over its values.
        if not isinstance(parameters, np.ndarray) or parameters.shape != (self.expected_size,):
            return False
        if parameters.dtype.kind != "f" or parameters.dtype.itemsize != 8:
            return False
        magnitude = np.abs(parameters)
        return bool(np.isfinite(magnitude).all() and (magnitude <= self.max_abs).all())


def _missing(signature: Any) -> bool:
    return signature is None or (isinstance(signature, (bytes, bytearray)) and len(signature) == 0)


def _well_formed(update: SignedUpdate) -> bool:
    """Whether every field but the parameters has the type and length the message format needs."""
    round_ok = isinstance(update.round, (int, np.integer)) and not isinstance(update.round, (bool, np.bool_)) \
        and 0 <= update.round <= MAX_ROUND
    return (round_ok and isinstance(update.client, str) and isinstance(update.signature, bytes)
            and isinstance(update.nonce, bytes) and len(update.nonce) == NONCE_BYTES
            and isinstance(update.digest, bytes) and len(update.digest) == DIGEST_BYTES)


def _check_round(round_number: Any) -> None:
    if isinstance(round_number, (bool, np.bool_)) or not isinstance(round_number, (int, np.integer)) \
            or not 0 <= round_number <= MAX_ROUND:
        raise SigningError(f"round_number must be an integer from 0 to 2**64 - 1, got {round_number!r}.")


def _public_key(client: str, key: bytes) -> Ed25519PublicKey:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise SigningError(f"The public key of client {client!r} must be {KEY_BYTES} raw bytes.")
    return Ed25519PublicKey.from_public_bytes(key)
