"""Runs a compiled state machine in LocalStack, acting as the workers, to check
the emitted ASL where only an emulator can: task tokens, Parallel and Map data
flow, and the failure handling (failed step, TIMED_OUT, error and cause on the
job item).

It creates its own queues and table (prefix `aslcheck`), so it does not touch a
deployed stack, and removes them at the end.

    cargo run -- compile workflows/tests/localstack/flow.yaml -o /tmp/aslcheck --prefix aslcheck
    python3 workflows/tests/localstack/run_asl.py /tmp/aslcheck/asl-check.asl.json

Needs boto3 and LocalStack on 127.0.0.1:4566.
"""

import json
import sys
import time
import uuid

import boto3

PREFIX = "aslcheck"
KINDS = ["model", "tool", "agent", "approval", "control"]


def clients():
    kw = dict(endpoint_url="http://127.0.0.1:4566", region_name="us-east-1",
              aws_access_key_id="test", aws_secret_access_key="test")
    return boto3.client("sqs", **kw), boto3.client("stepfunctions", **kw), boto3.client("dynamodb", **kw)


def answer(sfn, body, job, fail, silent):
    """Answers one task message the way a worker does."""
    step, item = body["step"], body.get("item")
    if step == silent:
        return
    if fail and step == fail[0] and (fail[1] is None or item == fail[1]):
        sfn.send_task_failure(taskToken=body["token"], error="Garden.ToolError", cause=f"{step} said no")
        return
    exports = {e["name"]: [0, 1, 2] if e["shape"] == "indices" else (5 if "score" in e["name"] else True)
               for e in body.get("exports", [])}
    out = {"step": step, "exports": exports}
    if item is not None:
        out["item"] = item
    sfn.send_task_success(taskToken=body["token"], output=json.dumps(out))


def run(sqs, sfn, ddb, urls, arn, fail=None, silent=None):
    job = "job-" + uuid.uuid4().hex[:8]
    execution = sfn.start_execution(stateMachineArn=arn, name=job,
                                    input=json.dumps({"job": {"id": job, "workflow": "asl-check"}, "v": {}}))["executionArn"]
    deadline = time.time() + 90
    while time.time() < deadline and sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
        for url in urls.values():
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                body = json.loads(m["Body"])
                if body.get("job_id") == job:
                    answer(sfn, body, job, fail, silent)
        time.sleep(0.3)
    status = sfn.describe_execution(executionArn=execution)["status"]
    item = ddb.get_item(TableName=PREFIX, Key={"PK": {"S": f"JOB#{job}"}, "SK": {"S": "JOB"}}).get("Item", {})
    return status, {k: list(v.values())[0] for k, v in item.items()}


def main():
    asl = open(sys.argv[1]).read()
    sqs, sfn, ddb = clients()
    urls = {k: sqs.create_queue(QueueName=f"{PREFIX}-{k}")["QueueUrl"] for k in KINDS}
    ddb.create_table(TableName=PREFIX, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("PK", "SK")],
                     KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}])
    arn = sfn.create_state_machine(name=f"{PREFIX}-{uuid.uuid4().hex[:6]}", definition=asl,
                                   roleArn="arn:aws:iam::000000000000:role/aslcheck")["stateMachineArn"]
    cases = [
        ("a failing `on_error: continue` step", dict(fail=("risky", None)), "SUCCEEDED", {"status": "SUCCEEDED"}),
        ("an item failing in a Map in a Parallel", dict(fail=("each", 1)), "FAILED",
         {"status": "FAILED", "failed_step": "each", "error": "Garden.ToolError", "cause": "each said no"}),
        ("a step failing in a Parallel branch", dict(fail=("plan", None)), "FAILED",
         {"status": "FAILED", "failed_step": "plan"}),
        ("a step failing in the main flow", dict(fail=("final", None)), "FAILED",
         {"status": "FAILED", "failed_step": "final"}),
        ("a step that times out", dict(silent="lookup"), "FAILED",
         {"status": "TIMED_OUT", "failed_step": "lookup", "error": "States.Timeout"}),
    ]
    failures = 0
    try:
        for name, args, want_status, want_item in cases:
            status, item = run(sqs, sfn, ddb, urls, arn, **args)
            ok = status == want_status and all(item.get(k) == v for k, v in want_item.items())
            failures += not ok
            print(f"{'ok ' if ok else 'BAD'} {name}: execution {status}, job {json.dumps(item)}")
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)
        for url in urls.values():
            sqs.delete_queue(QueueUrl=url)
        ddb.delete_table(TableName=PREFIX)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
