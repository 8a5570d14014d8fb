"""Translates template.yaml with SAM's own translator, the code `sam deploy` runs on the
template, and writes the CloudFormation it makes. cfn-lint then checks those resources (the
functions' roles and policies, event source mappings, the HTTP API): cfn-lint alone reads the
template without the SAM transform, so the SAM resources themselves went unchecked.

Offline and without an AWS account: local code folders become the S3 URIs that `sam package`
would write, and AWS managed policies come from the map bundled with the translator.

Usage: translate.py template.yaml out.json   (exit 1 with SAM's messages when it refuses)
"""

import json
import os
import sys

# The translator asks boto3 for the partition of the region it runs in.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# Properties that name a local folder which `sam package` uploads and replaces with its S3 URI.
PACKAGED = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class BundledPoliciesOnly:
    """The translator calls this only for a managed policy missing from its bundled map."""

    def load(self):
        raise SystemExit("translate.py: a managed policy is not in SAM's bundled map, and this check runs offline")


def main(src: str, out: str) -> int:
    with open(src, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for name, resource in template.get("Resources", {}).items():
        prop = PACKAGED.get(resource.get("Type"))
        props = resource.get("Properties", {})
        if prop and isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
            props[prop] = f"s3://latentmint-packaged/{name}.zip"
    try:
        cfn = transform(template, {}, BundledPoliciesOnly())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{src}: {cause.message}", file=sys.stderr)
        return 1
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cfn, f, indent=1)
    kinds = sorted({r["Type"] for r in cfn.get("Resources", {}).values()})
    print(f"{src}: SAM's translator made {len(cfn.get('Resources', {}))} resources ({', '.join(kinds)})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
