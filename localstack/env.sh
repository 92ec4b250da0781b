# shellcheck shell=bash
# Environment for the local stack (LocalStack + stand-ins + agent process).
#   source localstack/env.sh     exports it into the current shell
#   bash localstack/env.sh       prints the `export` lines (e.g. eval "$(bash localstack/env.sh)")
# Gateways: every GARDEN_GATEWAY_URL_<NAME> points at the local MCP tool server; add one per
# gateway name your workflows use (GARDEN_GATEWAY_NAMES="research finance support" by default).
# Agent runtimes go through the AgentCore stand-in on 4610, which forwards to the agent process on
# 4630; to call the agent process directly instead, set GARDEN_RUNTIME_URL_<NAME>=http://127.0.0.1:4630.

__garden_env() {
  local name
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:4566"
  echo "AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://127.0.0.1:4610"
  echo "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE=http://127.0.0.1:4610"
  echo "AWS_REGION=us-east-1"
  echo "AWS_DEFAULT_REGION=us-east-1"
  echo "AWS_ACCESS_KEY_ID=test"
  echo "AWS_SECRET_ACCESS_KEY=test"
  for name in ${GARDEN_GATEWAY_NAMES:-research finance support}; do
    name=$(printf '%s' "$name" | tr '[:lower:]-' '[:upper:]_')
    echo "GARDEN_GATEWAY_URL_${name}=http://127.0.0.1:4620/mcp"
  done
}

if (return 0 2>/dev/null); then
  # sourced
  while IFS= read -r __garden_line; do
    export "${__garden_line?}"
  done < <(__garden_env)
  unset __garden_line
  unset -f __garden_env
else
  __garden_env | sed 's/^/export /'
fi
