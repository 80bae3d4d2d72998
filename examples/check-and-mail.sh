#!/bin/sh
# Checks a neoconn config (e.g. from cron) and sends the fix script to the
# DBAs when a sync role lacks something. Mails with mail(1) when MAIL_TO is
# set and mail is installed; prints otherwise.
#   usage: check-and-mail.sh [CONFIG]      (default ./neoconn.lua)
set -u
config=${1:-neoconn.lua}
fix=$(mktemp)
report=$(mktemp)
trap 'rm -f "$fix" "$report"' EXIT

neoconn check "$config" --fix-sql "$fix" >"$report" 2>&1
status=$?

case $status in
  0) exit 0 ;;                                  # every connection passes
  1) subject="neoconn: sync roles lack privileges ($config)" ;;
  2) subject="neoconn: some connections could not be tested ($config)" ;;
  *) cat "$report" >&2; exit "$status" ;;       # usage or config error
esac

if [ -n "${MAIL_TO:-}" ] && command -v mail >/dev/null 2>&1; then
  { cat "$report"; echo; echo "-- fix script (run as an administrator):"; cat "$fix"; } \
    | mail -s "$subject" "$MAIL_TO"
else
  echo "$subject"
  cat "$report"
  if [ -s "$fix" ]; then echo "-- fix script (run as an administrator):"; cat "$fix"; fi
fi
exit "$status"
