"""The `dynamodb:moto` provider: every DynamoDB operation falls through to moto.

The provider class implements no operation itself. LocalStack's
`MotoFallbackDispatcher` wraps each (unimplemented) handler so that the
request is dispatched to moto's DynamoDB backend, keyed by the request's
account and region like the other moto-backed services.

Known differences from AWS (moto's): TTL is stored and reported but expired
items are not deleted; DynamoDB Streams are not wired to this provider.
"""

from localstack.services.plugins import Service, aws_provider


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher
    from localstack.services.plugins import ServiceLifecycleHook

    class MotoDynamoDBProvider(DynamodbApi, ServiceLifecycleHook):
        """DynamoDB served entirely by moto."""

        service = "dynamodb"

    return Service.for_provider(MotoDynamoDBProvider(), dispatch_table_factory=MotoFallbackDispatcher)
