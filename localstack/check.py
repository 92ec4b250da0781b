"""Smoke test of the local LocalStack: the services and integrations Execution Garden relies on.

Run with the LocalStack venv's Python once `localstack/start.sh` has reported healthy:

    localstack/.venv/bin/python localstack/check.py

Each check prints one line (PASS/FAIL with timing). Exit code 0 when all pass, 1 otherwise.
Every run uses fresh resource names (suffix from the clock) and deletes what it created.
"""

import json
import os
import sys
import time
import traceback
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
REGION = os.environ.get("AWS_REGION", "us-east-1")
SUFFIX = f"{int(time.time() * 1000) % 10**9}"
TABLE = f"garden-check-{SUFFIX}"
QUEUE = f"garden-check-{SUFFIX}"
ROLE_ARN = "arn:aws:iam::000000000000:role/garden-check"


def client(name):
    return boto3.client(
        name,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


ddb = client("dynamodb")
sqs = client("sqs")
sfn = client("stepfunctions")
results = []


def check(name):
    def wrap(fn):
        start = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except Exception as exc:  # noqa: BLE001 - report every failure and go on
            detail = f"{type(exc).__name__}: {exc}"
            if os.environ.get("CHECK_VERBOSE"):
                traceback.print_exc()
            ok = False
        ms = (time.monotonic() - start) * 1000
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name} ({ms:.0f} ms){'  ' + detail if detail else ''}", flush=True)
        return fn

    return wrap


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as exc:
        got = exc.response["Error"]["Code"]
        expect(got == code, f"expected {code}, got {got}")
        return exc
    raise AssertionError(f"expected {code}, call succeeded")


@check("health endpoint reports sqs, stepfunctions, dynamodb")
def _health():
    with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=5) as resp:
        body = json.load(resp)
    services = body["services"]
    for svc in ("sqs", "stepfunctions", "dynamodb", "events", "iam", "sts"):
        expect(services.get(svc) in ("available", "running"), f"{svc} is {services.get(svc)}")
    return f"version {body.get('version')}"


@check("dynamodb CreateTable with GSI by-workflow + TTL expires_at")
def _create_table():
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-workflow",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    ddb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    ttl = ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    expect(ttl.get("AttributeName") == "expires_at", f"ttl {ttl}")
    gsis = ddb.describe_table(TableName=TABLE)["Table"].get("GlobalSecondaryIndexes", [])
    expect([g["IndexName"] for g in gsis] == ["by-workflow"], f"gsis {gsis}")
    return f"ttl {ttl['TimeToLiveStatus']}"


def job_item(job_id, created):
    return {
        "PK": {"S": f"JOB#{job_id}"},
        "SK": {"S": "JOB"},
        "job_id": {"S": job_id},
        "workflow": {"S": "research-brief"},
        "status": {"S": "RUNNING"},
        "GSI1PK": {"S": "WF#research-brief"},
        "GSI1SK": {"S": f"{created}#{job_id}"},
        "expires_at": {"N": str(int(time.time()) + 30 * 86400)},
    }


@check("dynamodb conditional PutItem (attribute_not_exists) rejects a duplicate")
def _conditional_put():
    for i, created in enumerate(["2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z"]):
        ddb.put_item(TableName=TABLE, Item=job_item(f"j{i}", created), ConditionExpression="attribute_not_exists(PK)")
    expect_error(
        "ConditionalCheckFailedException",
        ddb.put_item,
        TableName=TABLE,
        Item=job_item("j0", "2026-12-03T12:00:00Z"),
        ConditionExpression="attribute_not_exists(PK)",
    )


@check("dynamodb Query on GSI by-workflow, newest first")
def _query_gsi():
    items = ddb.query(
        TableName=TABLE,
        IndexName="by-workflow",
        KeyConditionExpression="GSI1PK = :p AND begins_with(GSI1SK, :d)",
        ExpressionAttributeValues={":p": {"S": "WF#research-brief"}, ":d": {"S": "2026-12-03"}},
        ScanIndexForward=False,
    )["Items"]
    ids = [i["job_id"]["S"] for i in items]
    expect(ids == ["j1", "j0"], f"got {ids}")


@check("dynamodb UpdateItem with ADD counter and SET, ReturnValues")
def _update_add():
    for _ in range(3):
        out = ddb.update_item(
            TableName=TABLE,
            Key={"PK": {"S": "JOB#j0"}, "SK": {"S": "JOB"}},
            UpdateExpression="ADD pending :one SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":s": {"S": "RUNNING"}},
            ReturnValues="UPDATED_NEW",
        )
    expect(out["Attributes"]["pending"]["N"] == "3", f"got {out['Attributes']}")


@check("dynamodb TransactWriteItems commits, and cancels on a failed condition")
def _transact():
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE,
                     "Item": {"PK": {"S": "JOB#j0"}, "SK": {"S": "STEP#a"}, "status": {"S": "SUCCEEDED"}},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Update": {"TableName": TABLE, "Key": {"PK": {"S": "JOB#j0"}, "SK": {"S": "JOB"}},
                        "UpdateExpression": "ADD pending :m", "ConditionExpression": "pending > :z",
                        "ExpressionAttributeValues": {":m": {"N": "-1"}, ":z": {"N": "0"}}}},
        ]
    )
    exc = expect_error(
        "TransactionCanceledException",
        ddb.transact_write_items,
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"PK": {"S": "JOB#j0"}, "SK": {"S": "STEP#a"}},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Update": {"TableName": TABLE, "Key": {"PK": {"S": "JOB#j0"}, "SK": {"S": "JOB"}},
                        "UpdateExpression": "ADD pending :m", "ExpressionAttributeValues": {":m": {"N": "-1"}}}},
        ],
    )
    job = ddb.get_item(TableName=TABLE, Key={"PK": {"S": "JOB#j0"}, "SK": {"S": "JOB"}}, ConsistentRead=True)["Item"]
    expect(job["pending"]["N"] == "2", f"pending {job['pending']} (cancelled transaction must not apply)")
    reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
    return f"cancellation reasons {reasons}"


@check("sqs CreateQueue (path-style URL on the endpoint's host), send, receive, delete")
def _sqs():
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    host = ENDPOINT.split("://", 1)[-1].rstrip("/")
    expect(url.startswith(f"http://{host}/queue/") and url.endswith(f"/{QUEUE}"), f"queue url {url}")
    sqs.send_message(QueueUrl=url, MessageBody='{"hello": 1}')
    msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", [])
    expect(len(msgs) == 1 and json.loads(msgs[0]["Body"]) == {"hello": 1}, f"got {msgs}")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])
    return url


def state_machine_definition(queue_url):
    return {
        "StartAt": "Step",
        "States": {
            "Step": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {"token.$": "$$.Task.Token", "job_id.$": "$.job.id", "step": "draft"},
                },
                "ResultPath": "$.v.draft",
                "TimeoutSeconds": 60,
                "Next": "MarkSucceeded",
            },
            "MarkSucceeded": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {
                    "TableName": TABLE,
                    "Key": {"PK": {"S.$": "States.Format('JOB#{}', $.job.id)"}, "SK": {"S": "JOB"}},
                    "UpdateExpression": "SET #s = :s, confidence = :c",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":s": {"S": "SUCCEEDED"},
                        ":c": {"N.$": "States.Format('{}', $.v.draft.exports.confidence)"},
                    },
                },
                "ResultPath": None,
                "End": True,
            },
        },
    }


@check("stepfunctions sqs:sendMessage.waitForTaskToken + SendTaskSuccess, then dynamodb:updateItem")
def _sfn():
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    arn = sfn.create_state_machine(
        name=f"garden-check-{SUFFIX}", definition=json.dumps(state_machine_definition(url)), roleArn=ROLE_ARN
    )["stateMachineArn"]
    try:
        t0 = time.monotonic()
        exe = sfn.start_execution(stateMachineArn=arn, name="j1", input=json.dumps({"job": {"id": "j1"}, "v": {}}))
        deadline = time.monotonic() + 20
        msgs = []
        while not msgs and time.monotonic() < deadline:
            msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        expect(msgs, "no task message arrived within 20 s")
        body = json.loads(msgs[0]["Body"])
        expect(body.get("job_id") == "j1" and body.get("step") == "draft" and body.get("token"), f"body {body}")
        sqs.delete_message(QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])
        sfn.send_task_success(
            taskToken=body["token"], output=json.dumps({"step": "draft", "exports": {"confidence": 0.82}})
        )
        status = "RUNNING"
        while status == "RUNNING" and time.monotonic() < deadline:
            desc = sfn.describe_execution(executionArn=exe["executionArn"])
            status = desc["status"]
            if status == "RUNNING":
                time.sleep(0.05)
        ms = (time.monotonic() - t0) * 1000
        expect(status == "SUCCEEDED", f"execution {status}: {desc.get('error')} {desc.get('cause')}")
        out = json.loads(desc["output"])
        expect(out["v"]["draft"]["exports"]["confidence"] == 0.82, f"output {out}")
        job = ddb.get_item(TableName=TABLE, Key={"PK": {"S": "JOB#j1"}, "SK": {"S": "JOB"}}, ConsistentRead=True)
        item = job.get("Item", {})
        expect(item.get("status", {}).get("S") == "SUCCEEDED", f"job item {item}")
        expect(item.get("confidence", {}).get("N") == "0.82", f"job item {item}")
        return f"round trip {ms:.0f} ms"
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)


@check("events rule (event pattern) delivers to SQS; scheduler schedule is created and readable")
def _events():
    events, scheduler = client("events"), client("scheduler")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"garden-check-{SUFFIX}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["garden.check"]}))
    try:
        events.put_targets(Rule=rule, Targets=[{"Id": "jobs", "Arn": queue_arn}])
        events.put_events(Entries=[{"Source": "garden.check", "DetailType": "job", "Detail": '{"n": 1}'}])
        msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
        expect(msgs and json.loads(msgs[0]["Body"]).get("detail") == {"n": 1}, f"got {msgs}")
        sqs.delete_message(QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])
    finally:
        events.remove_targets(Rule=rule, Ids=["jobs"])
        events.delete_rule(Name=rule)
    scheduler.create_schedule(
        Name=rule,
        ScheduleExpression="cron(0 2 * * ? *)",
        ScheduleExpressionTimezone="Europe/London",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": queue_arn, "RoleArn": ROLE_ARN, "Input": '{"workflow": "research-brief"}'},
    )
    got = scheduler.get_schedule(Name=rule)
    scheduler.delete_schedule(Name=rule)
    expect(got["ScheduleExpressionTimezone"] == "Europe/London", f"schedule {got}")
    return "schedules are stored, never fired by LocalStack"


@check("cleanup: delete queue and table")
def _cleanup():
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"])
    ddb.delete_table(TableName=TABLE)


passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if all(results) else 1)
