"""LocalStack add-ons used by Execution Garden's local stack (installed into localstack/.venv).

- `providers`: the `dynamodb:moto` provider, serving the DynamoDB API from moto (which LocalStack
  already ships) instead of DynamoDB Local, which needs a Java runtime and jars downloaded at
  first use and therefore fails on machines without internet. Select it with
  `PROVIDER_OVERRIDE_DYNAMODB=moto`.
- `run`: `python -m garden_localstack.run` starts LocalStack's runtime with its gateway bound
  to the host of `GATEWAY_LISTEN` (LocalStack's twisted server binds every interface).
"""
