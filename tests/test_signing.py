"""Signed client updates: an honest update is accepted, and every kind of bad one is refused with its reason."""

import dataclasses
import pickle

import numpy as np
import pytest

from geoanom.errors import GeoanomError
from geoanom.federated import signing
from geoanom.federated.signing import ClientKeys, SignedUpdate, UpdateVerifier, parameter_digest, signed_message

SIZE = 50


@pytest.fixture(scope="module")
def keys():
    return {name: ClientKeys.generate() for name in ("alpha", "beta")}


@pytest.fixture
def verifier(keys):
    return UpdateVerifier({name: key.public_bytes() for name, key in keys.items()}, expected_size=SIZE)


def vector(seed=0, size=SIZE):
    return np.random.default_rng(seed).normal(size=size)


def signed(keys, client="alpha", round_number=3, parameters=None, nonce=None):
    return keys[client].sign_update(round_number, client, nonce, vector() if parameters is None else parameters)


def test_honest_update_is_accepted(keys, verifier):
    update = signed(keys)
    assert verifier.check(update, current_round=3) is None
    assert update.round == 3 and update.client == "alpha" and len(update.nonce) == 16
    assert update.digest == parameter_digest(vector())
    np.testing.assert_array_equal(update.parameters, vector())


def test_keys_round_trip_through_raw_bytes(keys):
    public, private = keys["alpha"].public_bytes(), keys["alpha"].private_bytes()
    assert len(public) == 32 and len(private) == 32
    restored = ClientKeys.from_private_bytes(private)
    assert restored.public_bytes() == public
    assert private.hex() not in repr(keys["alpha"])


def test_keys_refuse_to_be_pickled(keys):
    with pytest.raises(TypeError, match="private_bytes"):
        pickle.dumps(keys["alpha"])


def test_signed_update_pickles_and_still_verifies(keys, verifier):
    """Updates travel between dask workers by pickle."""
    assert verifier.check(pickle.loads(pickle.dumps(signed(keys))), 3) is None


def test_signed_parameters_are_a_read_only_copy(keys, verifier):
    values = vector()
    update = signed(keys, parameters=values)
    values[0] += 1.0
    assert not update.parameters.flags.writeable
    assert verifier.check(update, 3) is None


def test_digest_is_canonical():
    values = vector()
    assert parameter_digest(values) == parameter_digest(values.astype(">f8"))   # byte order
    assert parameter_digest(values) == parameter_digest(np.asfortranarray(values))
    assert parameter_digest(values[::-1].copy()[::-1]) == parameter_digest(values)   # strided view
    assert parameter_digest(values.reshape(5, 10)) != parameter_digest(values)     # shape counts
    assert parameter_digest(np.zeros(0)) != parameter_digest(np.zeros((0, 1)))


def test_message_is_length_prefixed():
    """Moving a byte from the client id into the nonce must change the message."""
    digest = bytes(32)
    assert signed_message(1, "ab", b"c" * 16, digest) != signed_message(1, "a", b"b" + b"c" * 15, digest)
    assert signed_message(1, "a", bytes(16), digest).startswith(signing.MESSAGE_TAG)


def test_unsigned_objects_are_refused(keys, verifier):
    update = signed(keys)
    assert verifier.check({"delta": vector(), "client": "alpha"}, 3) == "unsigned"
    assert verifier.check(vector(), 3) == "unsigned"
    assert verifier.check(None, 3) == "unsigned"
    assert verifier.check(dataclasses.replace(update, signature=b""), 3) == "unsigned"
    assert verifier.check(dataclasses.replace(update, signature=None), 3) == "unsigned"


def test_unknown_client_is_refused(verifier):
    stranger = ClientKeys.generate()
    assert verifier.check(stranger.sign_update(3, "gamma", None, vector()), 3) == "unknown client"


def test_update_signed_with_another_clients_key_is_refused(keys, verifier):
    impostor = keys["beta"].sign_update(3, "alpha", None, vector())
    assert verifier.check(impostor, 3) == "bad signature"


@pytest.mark.parametrize("field, value", [("round", 4), ("nonce", bytes(16)), ("digest", bytes(32)),
                                          ("client", "beta")])
def test_tampered_signed_fields_break_the_signature(keys, verifier, field, value):
    update = dataclasses.replace(signed(keys, round_number=4 if field != "round" else 3), **{field: value})
    assert verifier.check(update, update.round) == "bad signature"


def test_tampered_parameters_are_refused(keys, verifier):
    update = signed(keys)
    poisoned = update.parameters * 10.0
    assert verifier.check(dataclasses.replace(update, parameters=poisoned), 3) == "digest mismatch"
    # Whoever tampers cannot fix the digest without the key.
    forged = dataclasses.replace(update, parameters=poisoned, digest=parameter_digest(poisoned))
    assert verifier.check(forged, 3) == "bad signature"


def test_replayed_nonce_is_refused_per_client(keys, verifier):
    nonce = bytes(range(16))
    first = signed(keys, nonce=nonce)
    assert verifier.check(first, 3) is None
    assert verifier.check(first, 3) == "replayed nonce"
    assert verifier.check(signed(keys, parameters=vector(1), nonce=nonce), 3) == "replayed nonce"
    assert verifier.check(signed(keys, client="beta", nonce=nonce), 3) is None   # nonces are per client


def test_refused_update_does_not_use_up_its_nonce(keys, verifier):
    update = signed(keys, round_number=4)
    assert verifier.check(update, 3) == "future round"
    assert verifier.check(update, 4) is None


def test_stale_and_future_rounds_are_refused(keys, verifier):
    assert verifier.check(signed(keys, round_number=2), 3) == "stale round"
    assert verifier.check(signed(keys, round_number=4), 3) == "future round"


@pytest.mark.parametrize("parameters", [
    np.zeros(SIZE - 1), np.zeros(SIZE + 1), np.zeros((5, 10)), np.zeros((SIZE, 1)),
    np.zeros(SIZE, dtype=np.float32), np.zeros(SIZE, dtype=np.int64), np.zeros(SIZE, dtype=object),
    np.full(SIZE, np.nan), np.full(SIZE, np.inf), np.full(SIZE, -2e6), [0.0] * SIZE,
], ids=["short", "long", "2-d", "column", "float32", "int", "object", "nan", "inf", "huge", "list"])
def test_bad_payloads_are_refused(keys, verifier, parameters):
    update = signed(keys)
    assert verifier.check(dataclasses.replace(update, parameters=parameters), 3) == "bad payload"


def test_honestly_signed_non_finite_update_is_refused(keys, verifier):
    values = vector()
    values[7] = np.nan
    assert verifier.check(signed(keys, parameters=values), 3) == "bad payload"


@pytest.mark.parametrize("field, value", [("round", "3"), ("round", True), ("round", -1), ("client", 7),
                                          ("nonce", b"short"), ("nonce", "x" * 16), ("digest", b"x"),
                                          ("signature", 12345)])
def test_malformed_fields_are_refused(keys, verifier, field, value):
    update = dataclasses.replace(signed(keys), **{field: value})
    assert verifier.check(update, 3) == "bad payload"


def test_oversize_payload_is_refused_before_hashing(keys, verifier, monkeypatch):
    update = dataclasses.replace(signed(keys), parameters=np.zeros(10_000_000))

    def must_not_hash(parameters):
        raise AssertionError("hashed an oversize payload")

    monkeypatch.setattr(signing, "parameter_digest", must_not_hash)
    assert verifier.check(update, 3) == "bad payload"


def test_every_reason_is_listed():
    assert set(signing.REFUSALS) == {"unsigned", "unknown client", "bad signature", "digest mismatch",
                                     "replayed nonce", "stale round", "future round", "bad payload"}


def test_bad_inputs_raise_geoanom_errors(keys):
    with pytest.raises(GeoanomError, match="32 raw bytes"):
        UpdateVerifier({"alpha": b"short"}, expected_size=SIZE)
    with pytest.raises(GeoanomError, match="expected_size"):
        UpdateVerifier({}, expected_size=0)
    with pytest.raises(GeoanomError, match="max_abs"):
        UpdateVerifier({}, expected_size=SIZE, max_abs=float("inf"))
    with pytest.raises(GeoanomError, match="nonce"):
        keys["alpha"].sign_update(1, "alpha", b"short", vector())
    with pytest.raises(GeoanomError, match="round_number"):
        keys["alpha"].sign_update(-1, "alpha", None, vector())
    with pytest.raises(GeoanomError, match="client_id"):
        keys["alpha"].sign_update(1, 7, None, vector())
    with pytest.raises(GeoanomError, match="real numbers"):
        parameter_digest(np.array(["a"]))
    with pytest.raises(GeoanomError, match="32 bytes"):
        ClientKeys.from_private_bytes(b"short")


def test_signed_update_repr_is_short(keys):
    text = repr(signed(keys, parameters=np.zeros(SIZE)))
    assert "alpha" in text and len(text) < 200
    assert isinstance(signed(keys), SignedUpdate)
