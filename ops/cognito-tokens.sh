#!/usr/bin/env bash
# Cognito access tokens for user-1..user-N of a stack deployed with CreateUserPool=true, as the
# JSON object `cargo xtask loadtest --tokens-file` and k6's TOKENS_FILE take:
#
#   ops/cognito-tokens.sh STACK N > .local/tokens-STACK.json
#
# Creates each missing user (username user-K, a random permanent password kept in
# .local/cognito-STACK-passwords.json, mode 600) and signs each in with USER_PASSWORD_AUTH.
# Access tokens last an hour (the pool client's default): rerun for a longer run.
# Needs: aws CLI v2 with credentials for the account (cognito-idp:Admin*), jq, openssl.
set -euo pipefail

stack="${1:?usage: $0 STACK N}"
count="${2:?usage: $0 STACK N}"
[[ "$count" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive whole number" >&2; exit 2; }
export AWS_PAGER=""

output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
pool="$(output UserPoolId)"
client="$(output UserPoolClientId)"
if [[ -z "$pool" || "$pool" == None || -z "$client" || "$client" == None ]]; then
  echo "stack $stack has no UserPoolId/UserPoolClientId outputs: deploy it with CreateUserPool=true" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$root/.local"
passwords="$root/.local/cognito-$stack-passwords.json"
[[ -s "$passwords" ]] || { echo '{}' > "$passwords"; chmod 600 "$passwords"; }

tokens='{}'
for ((k = 1; k <= count; k++)); do
  user="user-$k"
  password="$(jq -r --arg u "$user" '.[$u] // empty' "$passwords")"
  if [[ -z "$password" ]]; then
    # Upper, lower, digit and symbol: Cognito's default password policy.
    password="Aa1!$(openssl rand -hex 12)"
    aws cognito-idp admin-create-user --user-pool-id "$pool" --username "$user" \
      --message-action SUPPRESS >/dev/null 2>&1 || true
    aws cognito-idp admin-set-user-password --user-pool-id "$pool" --username "$user" \
      --password "$password" --permanent >/dev/null
    jq --arg u "$user" --arg p "$password" '.[$u] = $p' "$passwords" > "$passwords.tmp"
    mv "$passwords.tmp" "$passwords"
  fi
  token="$(aws cognito-idp initiate-auth --client-id "$client" --auth-flow USER_PASSWORD_AUTH \
    --auth-parameters "USERNAME=$user,PASSWORD=$password" \
    --query AuthenticationResult.AccessToken --output text)"
  tokens="$(jq --arg u "$user" --arg t "$token" '.[$u] = $t' <<<"$tokens")"
done
printf '%s\n' "$tokens"
