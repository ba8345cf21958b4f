"""Authenticator: what a bearer JWT must be to pass, and the attacks it must not let through."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from service.auth.tokens import REASONS, Authenticator, Identity, sign_dev_token
from service.clock import ManualClock
from service.config.settings import TenantSettings
from service.errors import ConfigError, InvalidToken
from service.policy.model import Policy, RoleRules
from service.redact import Secret

SECRET = "s3cret-" * 10  # 70 bytes: enough for HS512 as well
NOW = 1_700_000_000
JWKS_URL = "https://idp.example/jwks.json"


def tenant(**overrides: Any) -> TenantSettings:
    base = TenantSettings(
        id="default",
        upstream="fake",
        upstream_url="http://127.0.0.1:1/v1",
        upstream_api="ga",
        upstream_api_key=None,
        jwt_secret=Secret(SECRET),
        jwt_public_key=None,
        jwt_jwks_url=None,
        jwt_issuer=None,
        jwt_audience=None,
        jwt_algorithms=("HS256",),
        jwt_leeway_seconds=30,
        jwt_user_claim="sub",
        jwt_role_claim="role",
        policy=Policy(
            default_role="reader",
            on_violation="clamp",
            tenant_limits=(),
            roles={"reader": RoleRules()},
        ),
        admin_api_key=None,
        cors_origins=(),
        rate_limit_failure_mode="closed",
    )
    return replace(base, **overrides)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "user-1", "role": "owner", "iat": NOW, "exp": NOW + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs_token(
    payload: dict[str, Any] | str | bytes,
    *,
    header: dict[str, Any] | str | None = None,
    alg: str = "HS256",
    secret: bytes = SECRET.encode(),
) -> str:
    """A token with a correct HMAC signature over exactly the given header/payload text."""
    raw_header = header if header is not None else {"alg": alg, "typ": "JWT"}
    h = raw_header if isinstance(raw_header, str) else json.dumps(raw_header)
    p = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    signing_input = f"{b64(h.encode())}.{b64(p if isinstance(p, bytes) else p.encode())}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signature = hmac.new(secret, signing_input.encode(), digest.get(alg, hashlib.sha256)).digest()
    return f"{signing_input}.{b64(signature)}"


B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def noncanonical(token: str) -> str:
    """Set an unused low bit of the signature's last character: lenient decoders still
    read the same bytes (an HS256 signature is 43 characters carrying 256 bits)."""
    last = B64URL_ALPHABET.index(token[-1])
    return token[:-1] + B64URL_ALPHABET[last ^ 1]


def bearer(token: str) -> list[str]:
    return [f"Bearer {token}"]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private_key: Any) -> str:
    public: bytes = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


class Idp:
    """JWKS served through httpx.MockTransport; records every request the broker makes."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url) != JWKS_URL:
            return httpx.Response(404)
        return httpx.Response(200, json={"keys": self.keys})


@pytest.fixture
def idp() -> Idp:
    return Idp()


@pytest.fixture
async def http(idp: Idp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.handler)) as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


async def refused(auth: Authenticator, authorization: list[str]) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(authorization)
    return info.value


# --- accepted tokens -------------------------------------------------------------------


async def test_hs256_token_gives_the_identity(http: httpx.AsyncClient, clock: ManualClock) -> None:
    auth = Authenticator([tenant()], http=http, clock=clock)
    token = hs_token(claims(name="Ada", email="ada@example.com"))

    identity = await auth.authenticate(bearer(token))

    assert identity == Identity(
        tenant="default",
        user_id="user-1",
        role="owner",
        name="Ada",
        email="ada@example.com",
        expires_at=NOW + 600,
    )


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_every_hmac_alg_in_the_allow_list(
    http: httpx.AsyncClient, clock: ManualClock, alg: str
) -> None:
    auth = Authenticator([tenant(jwt_algorithms=(alg,))], http=http, clock=clock)
    identity = await auth.authenticate(bearer(hs_token(claims(), alg=alg)))
    assert identity.user_id == "user-1"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_scheme_is_case_insensitive(
    http: httpx.AsyncClient, clock: ManualClock, scheme: str
) -> None:
    auth = Authenticator([tenant()], http=http, clock=clock)
    identity = await auth.authenticate([f"{scheme} {hs_token(claims())}"])
    assert identity.user_id == "user-1"


async def test_custom_claims_and_optional_fields(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    settings = tenant(jwt_user_claim="uid", jwt_role_claim="https://acme/role")
    auth = Authenticator([settings], http=http, clock=clock)
    token = hs_token(
        {"uid": "u-9", "https://acme/role": ["owner"], "exp": NOW + 5, "name": "x" * 257}
    )

    identity = await auth.authenticate(bearer(token))

    assert (identity.user_id, identity.role, identity.name, identity.email) == (
        "u-9",
        None,
        None,
        None,
    )


async def test_issuer_and_audience_checked_when_configured(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    auth = Authenticator(
        [tenant(jwt_issuer="https://idp", jwt_audience="broker")], http=http, clock=clock
    )
    good = [
        claims(iss="https://idp", aud="broker"),
        claims(iss="https://idp", aud=["other", "broker"]),
    ]
    bad = [
        claims(aud="broker"),
        claims(iss="https://evil", aud="broker"),
        claims(iss="https://idp"),
        claims(iss="https://idp", aud="other"),
        claims(iss="https://idp", aud=["other"]),
        claims(iss="https://idp", aud=7),
        claims(iss="https://idp", aud=["broker", 7]),
    ]
    for payload in good:
        assert (await auth.authenticate(bearer(hs_token(payload)))).user_id == "user-1"
    for payload in bad:
        await refused(auth, bearer(hs_token(payload)))


async def test_leeway_applies_to_exp_nbf_and_iat(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    auth = Authenticator([tenant(jwt_leeway_seconds=30)], http=http, clock=clock)
    accepted = [
        claims(exp=NOW - 29),
        claims(nbf=NOW + 30),
        claims(iat=NOW + 30),
    ]
    rejected = [
        claims(exp=NOW - 30),
        claims(exp=NOW - 3600),
        claims(nbf=NOW + 31),
        claims(iat=NOW + 31),
    ]
    for payload in accepted:
        await auth.authenticate(bearer(hs_token(payload)))
    for payload in rejected:
        await refused(auth, bearer(hs_token(payload)))


async def test_a_verified_token_stops_working_at_exp(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    auth = Authenticator([tenant(jwt_leeway_seconds=0)], http=http, clock=clock)
    token = hs_token(claims(exp=NOW + 10))
    await auth.authenticate(bearer(token))
    await auth.authenticate(bearer(token))  # served from the verified-token cache

    clock.advance(10)
    await refused(auth, bearer(token))


async def test_dev_token_round_trips(http: httpx.AsyncClient, clock: ManualClock) -> None:
    settings = tenant(jwt_issuer="dev", jwt_audience="broker")
    auth = Authenticator([settings], http=http, clock=clock)
    token = sign_dev_token(
        SECRET, sub="dev-user", role=None, now=NOW, issuer="dev", audience="broker", name="Dev"
    )

    identity = await auth.authenticate(bearer(token))

    assert identity == Identity("default", "dev-user", None, "Dev", None, NOW + 3600)
    payload = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="broker", options={"verify_exp": False}
    )
    assert payload == {
        "sub": "dev-user",
        "iat": NOW,
        "exp": NOW + 3600,
        "iss": "dev",
        "aud": "broker",
        "name": "Dev",
    }
    with pytest.raises(ValueError, match="32 bytes"):
        sign_dev_token("short", sub="x", role=None, now=NOW)


# --- asymmetric keys: PEM and JWKS -----------------------------------------------------


def private_key_for(alg: str, rsa_key: rsa.RSAPrivateKey) -> Any:
    if alg.startswith(("RS", "PS")):
        return rsa_key
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private_key: Any, kid: str) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**data, "kid": kid}


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
async def test_asymmetric_token_with_pem(
    http: httpx.AsyncClient, clock: ManualClock, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    private = private_key_for(alg, rsa_key)
    settings = tenant(jwt_secret=None, jwt_public_key=pem(private), jwt_algorithms=(alg,))
    auth = Authenticator([settings], http=http, clock=clock)
    other = private_key_for(alg, rsa.generate_private_key(65537, 2048))

    assert (await auth.authenticate(bearer(jwt.encode(claims(), private, alg)))).role == "owner"
    await refused(auth, bearer(jwt.encode(claims(), other, alg)))


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
async def test_asymmetric_token_with_jwks(
    http: httpx.AsyncClient, clock: ManualClock, idp: Idp, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    private = private_key_for(alg, rsa_key)
    idp.keys = [public_jwk(private, "k1")]
    settings = tenant(jwt_secret=None, jwt_jwks_url=JWKS_URL, jwt_algorithms=(alg,))
    auth = Authenticator([settings], http=http, clock=clock)

    token = jwt.encode(claims(), private, alg, headers={"kid": "k1"})
    assert (await auth.authenticate(bearer(token))).user_id == "user-1"
    await refused(auth, bearer(jwt.encode(claims(), private, alg, headers={"kid": "k2"})))
    assert auth.jwks_refreshes == {"default": 1}
    assert len(idp.requests) == 1


async def test_failed_jwks_lookup_is_not_cached_as_a_failure(
    http: httpx.AsyncClient, clock: ManualClock, idp: Idp, rsa_key: rsa.RSAPrivateKey
) -> None:
    settings = tenant(jwt_secret=None, jwt_jwks_url=JWKS_URL, jwt_algorithms=("RS256",))
    auth = Authenticator([settings], http=http, clock=clock)
    token = jwt.encode(claims(exp=NOW + 3600), rsa_key, "RS256", headers={"kid": "new"})
    await refused(auth, bearer(token))  # empty key set: the IdP has not published it yet

    idp.keys = [public_jwk(rsa_key, "new")]
    clock.advance(30)

    assert (await auth.authenticate(bearer(token))).user_id == "user-1"


# --- refused tokens: every cause, one answer -------------------------------------------


def _refusals() -> dict[str, list[str]]:
    good = hs_token(claims())
    h, p, s = good.split(".")
    header = {"alg": "HS256"}
    return {
        "no header": [],
        "two headers": [f"Bearer {good}", f"Bearer {good}"],
        "basic scheme": [f"Basic {good}"],
        "no token": ["Bearer"],
        "empty token": ["Bearer "],
        "two spaces": [f"Bearer  {good}"],
        "trailing space": [f"Bearer {good} "],
        "too long": bearer(hs_token(claims(pad="x" * 6200))),
        "two segments": bearer(f"{h}.{p}"),
        "four segments": bearer(f"{good}.{s}"),
        "JWE shape": bearer(f"{h}.{p}.{s}.{s}.{s}"),
        "empty signature": bearer(f"{h}.{p}."),
        "padding appended": bearer(f"{good}="),
        "char appended": bearer(f"{good}A"),
        "two chars appended": bearer(f"{good}AA"),
        "non-canonical last char": bearer(noncanonical(good)),
        "plus instead of minus": bearer(good.replace("-", "+").replace("_", "/") + "+"),
        "padded header": bearer(f"{h}=.{p}.{s}"),
        "non-ascii": bearer(good + "é"),
        "header not json": bearer(hs_token(claims(), header="alg=HS256")),
        "header array": bearer(hs_token(claims(), header='["HS256"]')),
        "payload array": bearer(hs_token("[1, 2]")),
        "payload not utf-8": bearer(hs_token(b'{"sub": "\xff", "exp": 1800000000}')),
        "payload utf-16": bearer(hs_token(json.dumps(claims()).encode("utf-16"))),
        "payload with BOM": bearer(hs_token(b"\xef\xbb\xbf" + json.dumps(claims()).encode())),
        "duplicate claim": bearer(hs_token('{"sub": "a", "sub": "b", "exp": 1800000000}')),
        "duplicate nested": bearer(
            hs_token('{"sub": "a", "x": {"k": 1, "k": 2}, "exp": 1800000000}')
        ),
        "duplicate alg": bearer(
            hs_token(claims(), header='{"alg": "HS256", "alg": "none"}', alg="HS256")
        ),
        "NaN": bearer(hs_token('{"sub": "a", "exp": 1800000000, "x": NaN}')),
        "alg missing": bearer(hs_token(claims(), header={"typ": "JWT"})),
        "alg not a string": bearer(hs_token(claims(), header={"alg": ["HS256"]})),
        "alg not allowed": bearer(hs_token(claims(), alg="HS384")),
        "crit": bearer(hs_token(claims(), header={**header, "crit": ["exp"], "exp": 1})),
        "crit b64": bearer(hs_token(claims(), header={**header, "crit": ["b64"], "b64": False})),
        "kid not a string": bearer(hs_token(claims(), header={**header, "kid": 1})),
        "exp missing": bearer(hs_token(claims(exp=None))),
        "exp null": bearer(hs_token({"sub": "a", "exp": None})),
        "exp float": bearer(hs_token(claims(exp=NOW + 600.5))),
        "exp exponent": bearer(hs_token('{"sub": "a", "exp": 1.8e9}')),
        "exp string": bearer(hs_token(claims(exp=str(NOW + 600)))),
        "exp bool": bearer(hs_token(claims(exp=True))),
        "nbf bool": bearer(hs_token(claims(nbf=False))),
        "iat bool": bearer(hs_token(claims(iat=False))),
        "nbf float": bearer(hs_token(claims(nbf=NOW - 1.0))),
        "iat string": bearer(hs_token(claims(iat=str(NOW)))),
        "expired": bearer(hs_token(claims(exp=NOW - 100))),
        "sub missing": bearer(hs_token(claims(sub=None))),
        "sub empty": bearer(hs_token(claims(sub=""))),
        "sub number": bearer(hs_token(claims(sub=42))),
        "sub too long": bearer(hs_token(claims(sub="u" * 257))),
        "wrong secret": bearer(hs_token(claims(), secret=b"another-secret-" * 4)),
        "signature of another token": bearer(
            f"{h}.{hs_token(claims(sub='admin')).split('.')[1]}.{s}"
        ),
    }


REFUSALS = _refusals()


def test_refusal_fixtures_are_what_they_claim() -> None:
    assert len(REFUSALS["too long"][0]) > 8 * 1024 + 7
    sig = hs_token(claims()).split(".")[2]
    lenient = base64.urlsafe_b64decode(noncanonical(sig) + "=")
    assert lenient == base64.urlsafe_b64decode(sig + "=")


async def test_a_token_just_under_8_kib_is_accepted(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    auth = Authenticator([tenant()], http=http, clock=clock)
    token = hs_token(claims(pad="x" * 5900))
    assert 8000 < len(token) <= 8 * 1024
    assert (await auth.authenticate(bearer(token))).user_id == "user-1"


@pytest.mark.parametrize(
    "authorization", [pytest.param(value, id=name) for name, value in REFUSALS.items()]
)
async def test_every_refusal_looks_the_same_and_leaks_nothing(
    http: httpx.AsyncClient, clock: ManualClock, authorization: list[str]
) -> None:
    auth = Authenticator([tenant()], http=http, clock=clock)

    exc = await refused(auth, authorization)

    assert exc.status == 401
    assert exc.body()["error"] == {
        "message": InvalidToken.MESSAGE,
        "type": "authentication_error",
        "param": None,
        "code": "invalid_token",
    }
    assert exc.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    assert exc.reason in REASONS
    shown = f"{exc} {exc!r} {exc.reason} {exc.args}"
    for value in authorization:
        token = value.partition(" ")[2]
        for piece in [token, *token.split(".")]:
            assert len(piece) <= 8 or piece not in shown


# The reason each refusal is logged with (the access line); any other is `malformed`.
REASON_OF = {
    "no header": "missing",
    "alg missing": "algorithm",
    "alg not a string": "algorithm",
    "alg not allowed": "algorithm",
    "crit": "critical_header",
    "crit b64": "critical_header",
    "exp missing": "missing_exp",
    "expired": "expired",
    "sub missing": "user_claim",
    "sub empty": "user_claim",
    "sub number": "user_claim",
    "sub too long": "user_claim",
    "wrong secret": "bad_signature",
    "signature of another token": "bad_signature",
    # A 44th character: a well-formed signature of 33 bytes, which does not verify.
    "char appended": "bad_signature",
}


@pytest.mark.parametrize(
    ("name", "authorization"), [pytest.param(k, v, id=k) for k, v in REFUSALS.items()]
)
async def test_every_refusal_names_its_reason(
    http: httpx.AsyncClient, clock: ManualClock, name: str, authorization: list[str]
) -> None:
    auth = Authenticator([tenant()], http=http, clock=clock)

    exc = await refused(auth, authorization)

    assert exc.reason == REASON_OF.get(name, "malformed")


async def test_claim_refusals_name_the_claim_at_fault(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    auth = Authenticator(
        [tenant(jwt_issuer="https://idp", jwt_audience="broker")], http=http, clock=clock
    )
    cases = {
        "unknown_issuer": [claims(aud="broker"), claims(iss="https://evil", aud="broker")],
        "audience": [claims(iss="https://idp"), claims(iss="https://idp", aud=["other"])],
        "not_yet_valid": [
            claims(iss="https://idp", aud="broker", nbf=NOW + 60),
            claims(iss="https://idp", aud="broker", iat=NOW + 60),
        ],
    }
    for reason, payloads in cases.items():
        for payload in payloads:
            assert (await refused(auth, bearer(hs_token(payload)))).reason == reason


async def test_a_kid_the_jwks_does_not_hold_is_an_unknown_key(
    http: httpx.AsyncClient, clock: ManualClock, idp: Idp, rsa_key: rsa.RSAPrivateKey
) -> None:
    idp.keys = [public_jwk(rsa_key, "k1")]
    settings = tenant(jwt_secret=None, jwt_jwks_url=JWKS_URL, jwt_algorithms=("RS256",))
    auth = Authenticator([settings], http=http, clock=clock)

    token = jwt.encode(claims(), rsa_key, "RS256", headers={"kid": "k2"})

    assert (await refused(auth, bearer(token))).reason == "unknown_key"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "AAAA", "c2ln"])
async def test_alg_none_in_any_casing(
    http: httpx.AsyncClient, clock: ManualClock, alg: str, signature: str
) -> None:
    settings = tenant(jwt_algorithms=("HS256", "none", "None", "NONE", "nOnE"))
    auth = Authenticator([settings], http=http, clock=clock)
    h = b64(json.dumps({"alg": alg}).encode())
    p = b64(json.dumps(claims()).encode())
    await refused(auth, bearer(f"{h}.{p}.{signature}"))


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    http: httpx.AsyncClient, clock: ManualClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    public_pem = pem(rsa_key)
    settings = tenant(jwt_secret=None, jwt_public_key=public_pem, jwt_algorithms=("RS256", "HS256"))
    auth = Authenticator([settings], http=http, clock=clock)
    forged = hs_token(claims(), alg="HS256", secret=public_pem.encode())

    await refused(auth, bearer(forged))
    assert (await auth.authenticate(bearer(jwt.encode(claims(), rsa_key, "RS256")))).user_id


async def test_rs256_token_for_an_hmac_tenant_is_refused(
    http: httpx.AsyncClient, clock: ManualClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    auth = Authenticator([tenant(jwt_algorithms=("HS256", "RS256"))], http=http, clock=clock)
    await refused(auth, bearer(jwt.encode(claims(), rsa_key, "RS256")))


async def test_hmac_key_in_a_jwks_is_never_used(
    http: httpx.AsyncClient, clock: ManualClock, idp: Idp, rsa_key: rsa.RSAPrivateKey
) -> None:
    idp.keys = [
        public_jwk(rsa_key, "rsa"),
        {"kty": "oct", "kid": "oct", "k": b64(b"k" * 32), "alg": "HS256"},
    ]
    settings = tenant(jwt_secret=None, jwt_jwks_url=JWKS_URL, jwt_algorithms=("RS256", "HS256"))
    auth = Authenticator([settings], http=http, clock=clock)
    forged = hs_token(claims(), header={"alg": "HS256", "kid": "oct"}, secret=b"k" * 32)

    await refused(auth, bearer(forged))


@pytest.mark.parametrize(
    "kid",
    ["../../../../etc/passwd", "' OR '1'='1' --", "$(rm -rf /)", "`id`", "k1\x00", "k1 ", ""],
)
async def test_hostile_kid_is_just_an_unknown_kid(
    http: httpx.AsyncClient, clock: ManualClock, idp: Idp, rsa_key: rsa.RSAPrivateKey, kid: str
) -> None:
    idp.keys = [public_jwk(rsa_key, "k1")]
    settings = tenant(jwt_secret=None, jwt_jwks_url=JWKS_URL, jwt_algorithms=("RS256",))
    auth = Authenticator([settings], http=http, clock=clock)

    await refused(auth, bearer(jwt.encode(claims(), rsa_key, "RS256", headers={"kid": kid})))
    assert [str(r.url) for r in idp.requests] == [JWKS_URL]


@pytest.mark.parametrize("source", ["pem", "jwks"])
async def test_key_headers_never_fetch_or_pick_a_key(
    http: httpx.AsyncClient, clock: ManualClock, idp: Idp, rsa_key: rsa.RSAPrivateKey, source: str
) -> None:
    idp.keys = [public_jwk(rsa_key, "k1")]
    key_source: dict[str, Any] = (
        {"jwt_public_key": pem(rsa_key)} if source == "pem" else {"jwt_jwks_url": JWKS_URL}
    )
    auth = Authenticator(
        [tenant(jwt_secret=None, jwt_algorithms=("RS256",), **key_source)], http=http, clock=clock
    )
    attacker = rsa.generate_private_key(65537, 2048)
    headers = {
        "kid": "k1",
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": public_jwk(attacker, "k1"),
    }

    await refused(auth, bearer(jwt.encode(claims(), attacker, "RS256", headers=headers)))
    assert all(r.url.host == "idp.example" for r in idp.requests)


# --- several tenants -------------------------------------------------------------------

ACME_SECRET = "acme-" * 10
GLOBEX_SECRET = "globex-" * 10


@pytest.fixture
def two_tenants() -> list[TenantSettings]:
    return [
        tenant(
            id="acme",
            jwt_secret=Secret(ACME_SECRET),
            jwt_issuer="https://acme",
            jwt_audience="broker",
        ),
        tenant(
            id="globex",
            jwt_secret=Secret(GLOBEX_SECRET),
            jwt_issuer="https://globex",
            jwt_audience="broker",
        ),
        tenant(
            id="globex-eu",
            jwt_secret=Secret(SECRET),
            jwt_issuer="https://globex",
            jwt_audience="eu",
        ),
    ]


async def test_routes_by_issuer_and_audience(
    http: httpx.AsyncClient, clock: ManualClock, two_tenants: list[TenantSettings]
) -> None:
    auth = Authenticator(two_tenants, http=http, clock=clock)
    acme = hs_token(claims(iss="https://acme", aud="broker"), secret=ACME_SECRET.encode())
    globex = hs_token(claims(iss="https://globex", aud="broker"), secret=GLOBEX_SECRET.encode())
    eu = hs_token(claims(iss="https://globex", aud=["eu"]), secret=SECRET.encode())

    assert (await auth.authenticate(bearer(acme))).tenant == "acme"
    assert (await auth.authenticate(bearer(globex))).tenant == "globex"
    assert (await auth.authenticate(bearer(eu))).tenant == "globex-eu"


async def test_token_of_one_tenant_never_passes_for_another(
    http: httpx.AsyncClient, clock: ManualClock, two_tenants: list[TenantSettings]
) -> None:
    auth = Authenticator(two_tenants, http=http, clock=clock)
    attempts = [
        # acme's key, globex's issuer: routed to globex, which does not know acme's key
        hs_token(claims(iss="https://globex", aud="broker"), secret=ACME_SECRET.encode()),
        # globex's key, acme's issuer
        hs_token(claims(iss="https://acme", aud="broker"), secret=GLOBEX_SECRET.encode()),
        # both globex tenants match: ambiguous
        hs_token(claims(iss="https://globex", aud=["broker", "eu"]), secret=GLOBEX_SECRET.encode()),
        # unknown issuer, no issuer, no audience
        hs_token(claims(iss="https://initech", aud="broker"), secret=ACME_SECRET.encode()),
        hs_token(claims(aud="broker"), secret=ACME_SECRET.encode()),
        hs_token(claims(iss="https://acme"), secret=ACME_SECRET.encode()),
    ]
    reasons = [(await refused(auth, bearer(token))).reason for token in attempts]

    assert reasons == [
        "bad_signature",
        "bad_signature",
        "audience",
        "unknown_issuer",
        "unknown_issuer",
        "audience",
    ]


async def test_configuration_problems_are_startup_errors(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    weak_rsa = rsa.generate_private_key(65537, 1024)
    bad = [
        [tenant(jwt_secret=Secret("too-short"))],
        [tenant(jwt_secret=None, jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n")],
        [tenant(jwt_secret=None, jwt_public_key=pem(weak_rsa), jwt_algorithms=("RS256",))],
        [tenant(id="a", jwt_issuer="https://x"), tenant(id="b", jwt_issuer="https://x")],
        [tenant(id="a", jwt_issuer="https://x"), tenant(id="b")],
        [],
    ]
    for tenants in bad:
        with pytest.raises(ConfigError) as info:
            Authenticator(tenants, http=http, clock=clock)
        assert SECRET not in str(info.value)


async def test_many_hs256_tokens_each_give_their_own_identity(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """More tokens than the verified-token cache holds, each of its own user; the first,
    evicted since, still authenticates. How fast they are: bench/tokens.py."""
    auth = Authenticator([tenant()], http=http, clock=clock)
    tokens = [hs_token(claims(sub=f"user-{i}")) for i in range(1500)]

    identities = [await auth.authenticate(bearer(token)) for token in tokens]
    again = await auth.authenticate(bearer(tokens[0]))

    assert [i.user_id for i in identities] == [f"user-{i}" for i in range(1500)]
    assert again == identities[0]
