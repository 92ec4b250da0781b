"""The `dynamodb:moto` provider: every DynamoDB operation falls through to moto.

The provider class implements no operation itself. LocalStack's
`MotoFallbackDispatcher` wraps each (unimplemented) handler so that the
request is dispatched to moto's DynamoDB backend, keyed by the request's
account and region like the other moto-backed services.

Known differences from AWS (moto's): TTL is stored and reported but expired
items are not deleted; DynamoDB Streams are not wired to this provider.

Requests are served one at a time. DynamoDB applies the writes to one item
atomically, and the engine's conditional writes (one job per job id, one
answer per approval, join gates counting down) rely on it; moto does not lock,
so two concurrent updates of one item could interleave and lose one.
"""

import threading

from localstack.services.plugins import Service, aws_provider

_ONE_AT_A_TIME = threading.Lock()


def _serialised(table):
    """The same dispatch table, each handler holding one process-wide lock."""

    def wrap(handler):
        def serialised(context, request):
            with _ONE_AT_A_TIME:
                return handler(context, request)

        return serialised

    return {operation: wrap(handler) for operation, handler in table.items()}


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher
    from localstack.services.plugins import ServiceLifecycleHook

    class MotoDynamoDBProvider(DynamodbApi, ServiceLifecycleHook):
        """DynamoDB served entirely by moto."""

        service = "dynamodb"

    return Service.for_provider(
        MotoDynamoDBProvider(),
        dispatch_table_factory=lambda provider: _serialised(MotoFallbackDispatcher(provider)),
    )
