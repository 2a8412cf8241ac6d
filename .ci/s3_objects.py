"""Bucket chores for .ci/s3_shards.sh, through boto3 (AWS_ENDPOINT etc. from the environment).

make-bucket B | count B PREFIX | count-quiet B PREFIX | exists B KEY | verify B PREFIX | sizes B PREFIX
verify: every object under PREFIX is named <key>.<blake3 of its bytes>.<ext>.
"""
import os
import sys

import blake3
import boto3

s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT"])


def keys(bucket, prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            yield o["Key"]


cmd, bucket, *rest = sys.argv[1:]
if cmd == "make-bucket":
    s3.create_bucket(Bucket=bucket)
elif cmd in ("count", "count-quiet"):
    n = sum(1 for _ in keys(bucket, rest[0]))
    print(n if cmd == "count-quiet" else f"   s3://{bucket}/{rest[0]}: {n} objects")
elif cmd == "exists":
    sys.exit(0 if any(k == rest[0] for k in keys(bucket, rest[0])) else 1)
elif cmd == "verify":
    n = 0
    for k in keys(bucket, rest[0]):
        name = k.rsplit("/", 1)[-1]
        want = name.split(".")[1]
        got = blake3.blake3(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
        if got != want:
            sys.exit(f"s3://{bucket}/{k}: its bytes hash to {got}")
        n += 1
    print(f"   s3://{bucket}/{rest[0]}: all {n} objects whole (bytes hash to their names)")
elif cmd == "sizes":
    # Objects and bytes per stage folder (for docs/scaling.md).
    stages = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=rest[0]):
        for o in page.get("Contents", []):
            stage = o["Key"][len(rest[0]):].lstrip("/").split("/")[0]
            n, b = stages.get(stage, (0, 0))
            stages[stage] = (n + 1, b + o["Size"])
    for stage, (n, b) in sorted(stages.items()):
        print(f"   {stage:>15}: {n:6} objects, {b / 1e6:9.2f} MB, {b / n / 1e3:9.1f} kB each")
else:
    sys.exit(f"unknown command {cmd}")
