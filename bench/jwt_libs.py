"""ServiceAccount token signing and verification: PyJWT (what pilothouse uses) vs jwcrypto.

Signs and verifies upstream-shaped ServiceAccount JWTs (RS256 with a 2048-bit key, as
kubeadm's sa.key, and ES256) with both libraries in the same run and prints one JSON
object: microseconds per sign and per verify. jwcrypto is the baseline; it is a test
dependency only (``pip install jwcrypto`` to run this).

Usage: python bench/jwt_libs.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "https://kubernetes.default.svc.cluster.local"


def claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": [AUDIENCE],
        "exp": now + 3600,
        "iat": now,
        "iss": AUDIENCE,
        "jti": "4f1c0a0e-2b7e-4d7e-9a57-0c1f0f2f3e4d",
        "kubernetes.io": {
            "namespace": "default",
            "node": {"name": "n1", "uid": "u1"},
            "pod": {"name": "web-0", "uid": "u2"},
            "serviceaccount": {"name": "default", "uid": "u3"},
        },
        "nbf": now,
        "sub": "system:serviceaccount:default:default",
    }


def per_call_us(n: int, fn: Any) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return round((time.perf_counter() - start) / n * 1e6, 1)


def measure(alg: str, key: Any, n: int, body: dict[str, Any]) -> dict[str, float]:
    from jwcrypto import jwk
    from jwcrypto import jwt as jjwt

    public = key.public_key()
    token = jwt.encode(body, key, algorithm=alg, headers={"kid": "k"})
    out = {
        f"pyjwt_{alg}_sign_us": per_call_us(
            n, lambda: jwt.encode(body, key, algorithm=alg, headers={"kid": "k"})
        ),
        f"pyjwt_{alg}_verify_us": per_call_us(
            n, lambda: jwt.decode(token, public, algorithms=[alg], audience=AUDIENCE)
        ),
    }
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jkey = jwk.JWK.from_pem(pem)

    def jsign() -> str:
        t = jjwt.JWT(header={"alg": alg, "kid": "k"}, claims=body)
        t.make_signed_token(jkey)
        return str(t.serialize())

    jtoken = jsign()
    out[f"jwcrypto_{alg}_sign_us"] = per_call_us(n, jsign)
    out[f"jwcrypto_{alg}_verify_us"] = per_call_us(
        n,
        lambda: jjwt.JWT(jwt=jtoken, key=jkey, check_claims={"aud": AUDIENCE}, expected_type="JWS"),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    out: dict[str, Any] = {"n": args.n}
    body = claims()
    keys = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
    }
    for alg, key in keys.items():
        out.update(measure(alg, key, args.n, body))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
