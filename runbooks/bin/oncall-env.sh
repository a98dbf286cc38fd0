# shellcheck shell=bash
# On-call environment for the order-service runbooks.
#
#   source runbooks/bin/oncall-env.sh            # production stack "order-service"
#   STACK=order-service-staging source runbooks/bin/oncall-env.sh
#
# Resolves every physical name from the CloudFormation stack and its outputs (functions, table,
# API id and stage, topic, access log group, CodeDeploy application), so that no runbook
# hard-codes one, and defines the helpers the runbooks use:
#   insights MINUTES 'QUERY' [LOG_GROUP...]   CloudWatch Logs Insights over all four functions
#   metric NS METRIC STAT MINUTES [Name=..,Value=..]...   1-minute datapoints (STAT: Sum|Average|Maximum|pNN)
#     API_DIMS / API_5XX / API_4XX: the API's dimensions and 5xx/4xx metric names for its flavour;
#     EMF_DIMS: the Stack dimension every OrderService metric carries
#   ago_epoch N / ago_iso N                   "N minutes ago" as epoch seconds / ISO-8601 UTC
#   alarms                                    state of every alarm that notifies order-service-alarms
#   alias_state FN                            version(s) the `live` alias routes to
#   previous_version FN                       version `live` pointed to before the current one
#   active_deployments                        CodeDeploy deployments of this stack not yet finished
#   deployment_group FN                       CodeDeploy deployment group of a function
#   audit_table TABLE                         `cargo xtask audit` against a table in AWS (exit 0 = conserved, 1 = violations, 2 = could not run)
# Needs: aws CLI (v1 or v2) with credentials for the account, jq, GNU or BSD date.

STACK="${STACK:-order-service}"
AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region)}}"
export STACK AWS_REGION AWS_DEFAULT_REGION="$AWS_REGION" AWS_PAGER=""

_stack_resource() {
  aws cloudformation describe-stack-resource --stack-name "$STACK" --logical-resource-id "$1" \
    --query StackResourceDetail.PhysicalResourceId --output text
}
_stack_resources_of_type() {
  aws cloudformation list-stack-resources --stack-name "$STACK" \
    --query "StackResourceSummaries[?ResourceType=='$1'].PhysicalResourceId" --output text
}

_stack_output() {
  aws cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text
}

# Functions are named <stack>-<operation> by template.yaml; resolved anyway, so a renamed
# resource or another stack still works.
FN_CREATE="$(_stack_resource CreateOrderFunction)"
FN_PAY="$(_stack_resource PayOrderFunction)"
FN_CANCEL="$(_stack_resource CancelOrderFunction)"
FN_GET="$(_stack_resource GetOrderFunction)"
FN_REFUND="$(_stack_resource RefundOrderFunction)"
FUNCTIONS=("$FN_CREATE" "$FN_PAY" "$FN_CANCEL" "$FN_GET" "$FN_REFUND")
TABLE="$(_stack_output TableName)"
API_ID="$(_stack_output ApiId)"
STAGE="$(_stack_output ApiStage)"          # the API Gateway stage (template.yaml: v1); the Lambda alias is always `live`
API_URL="$(_stack_output ApiUrl)"
TOPIC_ARN="$(_stack_output AlarmTopicArn)"
# The API's flavour (template.yaml ApiType: http, the default, or rest) decides its metric names
# and dimensions: HTTP APIs publish 5xx/4xx by ApiId, REST APIs 5XXError/4XXError by ApiName.
# Runbooks write `metric AWS/ApiGateway "$API_5XX" Average 60 "${API_DIMS[@]}"` for either.
API_TYPE="$(_stack_output ApiType)"
case "$API_TYPE" in rest) ;; *) API_TYPE=http ;; esac
# shellcheck disable=SC2034  # API_DIMS and EMF_DIMS are arrays for the shell that sources this file
if [ "$API_TYPE" = rest ]; then
  API_NAME="$(aws apigateway get-rest-api --rest-api-id "$API_ID" --query name --output text)"
  _access_log_arn="$(aws apigateway get-stage --rest-api-id "$API_ID" --stage-name "$STAGE" \
    --query accessLogSettings.destinationArn --output text)"
  API_DIMS=("Name=ApiName,Value=$API_NAME" "Name=Stage,Value=$STAGE")
  API_5XX=5XXError API_4XX=4XXError
else
  API_NAME="$(aws apigatewayv2 get-api --api-id "$API_ID" --query Name --output text)"
  _access_log_arn="$(aws apigatewayv2 get-stage --api-id "$API_ID" --stage-name "$STAGE" \
    --query AccessLogSettings.DestinationArn --output text)"
  API_DIMS=("Name=ApiId,Value=$API_ID" "Name=Stage,Value=$STAGE")
  API_5XX=5xx API_4XX=4xx
fi
ACCESS_LOG_GROUP="$(sed -e 's/^arn:[^:]*:logs:[^:]*:[^:]*:log-group://' -e 's/:\*$//' <<<"$_access_log_arn")"
unset _access_log_arn
# Every OrderService (EMF) metric carries the stack it came from.
# shellcheck disable=SC2034
EMF_DIMS=("Name=Stack,Value=$STACK")
CD_APP="$(_stack_resources_of_type AWS::CodeDeploy::Application)"
export FN_CREATE FN_PAY FN_CANCEL FN_GET FN_REFUND TABLE API_ID STAGE API_URL TOPIC_ARN API_TYPE API_NAME API_5XX API_4XX ACCESS_LOG_GROUP CD_APP

# Log group of each function (the template may set LoggingConfig.LogGroup; default is /aws/lambda/<name>).
LOG_GROUPS=()
for _fn in "${FUNCTIONS[@]}"; do
  _lg="$(aws lambda get-function-configuration --function-name "$_fn" --query LoggingConfig.LogGroup --output text 2>/dev/null)"
  [ -z "$_lg" ] || [ "$_lg" = "None" ] && _lg="/aws/lambda/$_fn"
  LOG_GROUPS+=("$_lg")
done
unset _fn _lg

# Epoch seconds / ISO-8601 UTC for "N minutes ago"; works with GNU date and BSD (macOS) date.
ago_epoch() { date -u -d "-$1 min" +%s 2>/dev/null || date -u -v-"$1"M +%s; }
ago_iso() { date -u -d "-$1 min" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -v-"$1"M +%Y-%m-%dT%H:%M:%SZ; }

# insights MINUTES 'QUERY' [LOG_GROUP...]: runs a Logs Insights query and prints a TSV table.
insights() {
  local minutes="$1" query="$2"; shift 2
  local groups=("$@"); [ ${#groups[@]} -eq 0 ] && groups=("${LOG_GROUPS[@]}")
  local id status out
  id="$(aws logs start-query --log-group-names "${groups[@]}" \
        --start-time "$(ago_epoch "$minutes")" --end-time "$(date -u +%s)" \
        --query-string "$query" --query queryId --output text)" || return 1
  while :; do
    out="$(aws logs get-query-results --query-id "$id" --output json)"
    status="$(jq -r .status <<<"$out")"
    case "$status" in Complete|Failed|Cancelled|Timeout) break ;; esac
    sleep 2
  done
  [ "$status" = Complete ] || { echo "query $status" >&2; return 1; }
  jq -r '[.results[] | map({(.field): .value}) | add] as $rows
         | (reduce ($rows[] | keys_unsorted[]) as $k ([]; if any(.[]; . == $k) then . else . + [$k] end)
            - ["@ptr"]) as $cols
         | ($cols | @tsv), ($rows[] as $r | [$cols[] as $c | ($r[$c] // "-")] | @tsv)' <<<"$out" | column -t -s $'\t'
}

# metric NAMESPACE METRIC STAT MINUTES [Name=..,Value=..]...: 1-minute datapoints, oldest first.
metric() {
  local ns="$1" name="$2" stat="$3" minutes="$4"; shift 4
  local statflag=(--statistics "$stat") field="$stat"
  case "$stat" in p[0-9]*) statflag=(--extended-statistics "$stat"); field="ExtendedStatistics.$stat" ;; esac
  local dims=(); [ $# -gt 0 ] && dims=(--dimensions "$@")
  aws cloudwatch get-metric-statistics --namespace "$ns" --metric-name "$name" "${dims[@]}" \
    --start-time "$(ago_iso "$minutes")" --end-time "$(ago_iso 0)" --period 60 "${statflag[@]}" \
    --output json | jq -r --arg f "$field" '.Datapoints | sort_by(.Timestamp)[]
      | [.Timestamp, (getpath($f | split(".")) | tostring)] | @tsv'
}

# alarms: every metric alarm that notifies the order-service-alarms topic.
alarms() {
  aws cloudwatch describe-alarms --output json | jq -r --arg t "$TOPIC_ARN" '
    .MetricAlarms[] | select(((.AlarmActions // []) + (.OKActions // [])) | index($t))
    | [.StateValue, .StateUpdatedTimestamp, .AlarmName] | @tsv' | sort | column -t -s $'\t'
}

# alias_state FN: the version `live` serves and, during a canary, the second version and its weight.
alias_state() {
  aws lambda get-alias --function-name "$1" --name live \
    --query '{version: FunctionVersion, canary: RoutingConfig.AdditionalVersionWeights}' --output json
}

# deployment_group FN: the CodeDeploy deployment group SAM created for the function.
deployment_group() {
  local logical
  case "$1" in
    "$FN_CREATE") logical=CreateOrderFunction ;; "$FN_PAY") logical=PayOrderFunction ;;
    "$FN_CANCEL") logical=CancelOrderFunction ;; "$FN_GET") logical=GetOrderFunction ;;
    *) logical="$1" ;;
  esac
  aws deploy list-deployment-groups --application-name "$CD_APP" --output json \
    | jq -r --arg l "$logical" '.deploymentGroups[] | select(contains($l))' | head -n1
}

# previous_version FN: the version the last successful deployment replaced with the current one.
# Falls back to the highest published version below the current one (prints a warning), which is
# wrong when an intermediate deployment was rolled back, so check the CodeSha256/LastModified.
previous_version() {
  local fn="$1" cur dg ids prev
  cur="$(aws lambda get-alias --function-name "$fn" --name live --query FunctionVersion --output text)"
  dg="$(deployment_group "$fn")"
  ids="$(aws deploy list-deployments --application-name "$CD_APP" --deployment-group-name "$dg" \
        --include-only-statuses Succeeded --query 'deployments[:25]' --output text)"
  if [ -n "$ids" ] && [ "$ids" != None ]; then
    # shellcheck disable=SC2086  # ids is a whitespace-separated list on purpose
    prev="$(aws deploy batch-get-deployments --deployment-ids $ids --output json | jq -r --arg cur "$cur" '
      [.deploymentsInfo[] | select(.revision.appSpecContent.content != null)
       | .createTime as $t | (.revision.appSpecContent.content | fromjson? // {})
       | .Resources[]? | to_entries[] | .value.Properties
       | select((.TargetVersion | tostring) == $cur) | {t: $t, v: (.CurrentVersion | tostring)}]
      | sort_by(.t) | last | .v // empty')"
  fi
  if [ -z "$prev" ]; then
    echo "previous_version: no deployment record for $fn:$cur, using highest lower version; verify it" >&2
    prev="$(aws lambda list-versions-by-function --function-name "$fn" --output json \
      | jq -r --argjson cur "$cur" '[.Versions[].Version | select(. != "$LATEST") | tonumber | select(. < $cur)] | max // empty')"
  fi
  [ -n "$prev" ] && echo "$prev"
}

# active_deployments: CodeDeploy deployments of this stack's application that are still running.
active_deployments() {
  local ids
  ids="$(aws deploy list-deployments --include-only-statuses Created Queued InProgress Baking Ready \
        --query deployments --output text)"
  [ -z "$ids" ] || [ "$ids" = None ] && { echo "no active deployments"; return 0; }
  # shellcheck disable=SC2086
  aws deploy batch-get-deployments --deployment-ids $ids --output json | jq -r --arg app "$CD_APP" '
    .deploymentsInfo[] | select(.applicationName == $app)
    | [.deploymentId, .status, .deploymentGroupName, (.createTime | tostring)] | @tsv' | column -t -s $'\t'
}

# audit_table TABLE: the conservation audit against a table in AWS instead of DynamoDB Local.
# The one place that knows how xtask is pointed at AWS: `cargo xtask audit --table NAME` with no
# endpoint override (the functions' own convention), through the standard AWS chain. Prints the
# audit's JSON report; the exit status is the audit's (0 = conserved, 1 = violations, 2 = could
# not run). Refuses, rather than auditing the local stack by mistake, when this checkout's xtask
# cannot target a table.
audit_table() {
  local root
  root="$(git rev-parse --show-toplevel)" || return 2
  if ! (cd "$root" && cargo xtask audit --help 2>/dev/null | grep -q -- '--table'); then
    echo "audit_table: this checkout's 'cargo xtask audit' only audits the local stack (no --table)." >&2
    echo "             Use a checkout whose xtask supports it; do not trust a local audit for $1." >&2
    return 2
  fi
  ( cd "$root" && env -u AWS_ENDPOINT_URL_DYNAMODB -u AWS_ENDPOINT_URL AWS_REGION="$AWS_REGION" \
      cargo xtask audit --table "$1" )
}

echo "stack=$STACK region=$AWS_REGION table=$TABLE api=$API_TYPE $API_NAME($API_ID) stage=$STAGE codedeploy=$CD_APP"
echo "functions: ${FUNCTIONS[*]}"
