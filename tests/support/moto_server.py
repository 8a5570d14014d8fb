"""moto's server, with KMS Sign's `MessageType=DIGEST` done as AWS KMS does it.

moto 5.2 ignores MessageType and hashes every message again, so a digest sent for signing (what
an Ethereum signer sends: the transaction's keccak-256 hash, which KMS cannot compute) came back
signed over sha256(digest), and every such signature was refused. Here a DIGEST request on an
ECDSA key is signed over the digest as given (ECDSA with a prehashed input); everything else is
moto's own code. The tests start this file instead of `moto_server`:

    python tests/support/moto_server.py -H 127.0.0.1 -p PORT
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.kms.exceptions import ValidationException
from moto.kms.responses import KmsResponse
from moto.kms.utils import ECDSAPrivateKey
from moto.server import main

HASHES = {"ECDSA_SHA_256": hashes.SHA256(), "ECDSA_SHA_384": hashes.SHA384(), "ECDSA_SHA_512": hashes.SHA512()}

_moto_sign = KmsResponse.sign


def sign(self: KmsResponse) -> str:
    if self._get_param("MessageType") != "DIGEST":
        return _moto_sign(self)
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    algorithm = self._get_param("SigningAlgorithm")
    private = key.private_key
    if not isinstance(private, ECDSAPrivateKey) or algorithm not in private.valid_signing_algorithms:
        # moto's own checks and errors (key usage, algorithm) for anything else.
        return _moto_sign(self)
    digest = self._get_param("Message")
    if len(digest) != HASHES[algorithm].digest_size:
        raise ValidationException(
            f"Digest is invalid length for algorithm {algorithm}: {len(digest)} bytes"
        )
    signature = private.private_key.sign(digest, ec.ECDSA(Prehashed(HASHES[algorithm])))
    return json.dumps(
        {"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(), "SigningAlgorithm": algorithm}
    )


KmsResponse.sign = sign

if __name__ == "__main__":
    sys.exit(main())
